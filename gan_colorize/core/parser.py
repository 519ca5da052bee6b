"""The one command-line parser of every tool (train.py, evaluate.py, gan-colorize, the demo,
the benchmark, export, the mask preview, dedup): a Tool says what its command line accepts besides
--config and --section.key VALUE; parse_command_line builds the Config, cli_main turns a
UserError into one line on stderr.
"""
import sys
from dataclasses import dataclass, field, fields

from .checks import check
from .config import CHOICES, CONFIG_DIR, RENAMED, Config, ConfigError, load_preset, sections, set_key
from .errors import UserError
from .interrupt import SafeCtrlC


@dataclass(frozen=True)
class Tool:
    """What one command line accepts besides --config and --section.key VALUE: shorthands
    (--name VALUE for a key), flags (--name alone sets a bool key) and positional arguments."""
    prog: str
    aliases: dict
    flags: dict = field(default_factory=dict)
    positional: str = ""             # metavar of positional arguments; empty: none accepted
    sections: tuple = ()             # sections shown by --help; empty: all
    presets: bool = False            # accepts --config PRESET
    about: str = ""                  # one line: what the tool does (--help, a command list)
    required: tuple = ()             # keys that must be given a value
    n_positional: int | None = None  # exactly this many positional arguments; None: one or more


TRAIN = Tool("train.py", {"--resume": "train.resume", "--device": "train.device",
                          "--steps": "train.steps"}, presets=True)
EVALUATE = Tool("evaluate.py", {"--checkpoint": "eval.checkpoint", "--out": "eval.out",
                                "--device": "eval.device", "--precision": "eval.precision"},
                sections=("eval", "hints", "data", "masks"))
COLORIZE = Tool("gan-colorize", {f"--{k.replace('_', '-')}": f"colorize.{k}" for k in
                                 ("checkpoint", "backend", "mask", "select", "hints", "out", "composite", "size", "batch_size",
                                  "device", "precision", "seed")},
                flags={"--sheet": "colorize.sheet"}, positional="INPUT", sections=("colorize",))
DEMO = Tool("gan-colorize-demo", {f"--{k.replace('_', '-')}": f"demo.{k}" for k in
                                   ("checkpoint", "backend", "device", "precision", "host", "port", "max_side",
                                    "max_upload_mb", "max_megapixels")},
            sections=("demo",))
MASK_PREVIEW = Tool("python -m gan_colorize.masks preview",
                    {f"--{k}": f"mask_preview.{k}" for k in ("families", "out", "size", "n", "seed")},
                    sections=("mask_preview",), required=("mask_preview.families", "mask_preview.out"),
                    about="write a contact sheet of mask draws, one row per family")
DEDUP = Tool("python -m gan_colorize.dedup",
             {f"--{k}": f"dedup.{k}" for k in ("flowers17", "flowers102", "threshold", "out", "workers")},
             sections=("dedup",), required=("dedup.flowers17", "dedup.flowers102"),
             about="list the Flowers102 images that are near-duplicates of Flowers17 images "
                   "(crop-tolerant perceptual hash)")
EXPORT = Tool("python -m gan_colorize.checkpoint export", {}, flags={"--fp32": "export.fp32"},
              positional="SRC DST", n_positional=2, sections=("export",),
              about="G_ema + config only, float16 unless --fp32: SRC a training checkpoint, DST "
                    "the .pt to write")
EXPORT_ONNX = Tool("python -m gan_colorize.checkpoint export-onnx",
                   {"--calib-data": "export.calib_data", "--calib-images": "export.calib_images"},
                   flags={"--int8": "export.int8"}, positional="SRC DST",
                   n_positional=2, sections=("export",),
                   about="G_ema as an ONNX file (float32, or int8 with --int8; config in its "
                         "metadata) for onnxruntime and other runtimes; needs the [onnx] extra. "
                         "SRC a training or exported checkpoint, DST the .onnx file to write")
BENCHMARK = Tool("python -m gan_colorize.benchmark",
                 {f"--{k}": f"benchmark.{k}" for k in
                  ("set", "out", "cases", "outputs", "size", "truth", "method", "name")}
                 | {"--hints": "hints.benchmark"},
                 positional="COMMAND", sections=("benchmark", "hints", "data", "eval", "masks"))
ALIASES = TRAIN.aliases   # the training shorthands (bench and tests build training configs)


def parse_overrides(argv, tool=TRAIN):
    """['--a.b', 'v', '--c.d=w', '--resume', 'auto', 'photo.jpg'] ->
    (preset or None, [(key, value)], [positional]); tool's shorthands become their keys."""
    preset, pairs, rest, i = None, [], [], 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--"):
            if not tool.positional:
                raise ConfigError(f"{arg}: unexpected argument (use --section.key value)")
            rest.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in tool.flags and not eq:
            pairs.append((tool.flags[name], "true"))
            continue
        if not eq:
            if i >= len(argv):
                raise ConfigError(f"{name}: missing value")
            value = argv[i]
            i += 1
        if name == "--config" and tool.presets:
            preset = value
        else:
            key = tool.aliases.get(name) or tool.flags.get(name) or name[2:]
            pairs.append((key, value))
    return preset, pairs, rest


def usage(tool=TRAIN, default_preset=None, intro=""):
    """The --help text: every key of the tool's sections with its default and meaning."""
    pos = f" {tool.positional} [{tool.positional} ...]" if tool.positional else ""
    pos = f" {tool.positional}" if tool.n_positional else pos
    config = "[--config PRESET_OR_YAML] " if tool.presets else ""
    lines = [f"usage: {tool.prog} {config}[--section.key VALUE ...]{pos}"]
    if intro or tool.about:
        lines.append(intro or tool.about[0].upper() + tool.about[1:] + ".")
    if tool.presets:
        lines.append(f"presets in {CONFIG_DIR}: "
                     + ", ".join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))
                     + (f" (default: {default_preset})" if default_preset else ""))
    short = [f"{a} = --{k}" for a, k in tool.aliases.items()]
    short += [f"{a} = --{k} true" for a, k in tool.flags.items()]
    lines += ["shorthands: " + ", ".join(short)] if short else []
    lines += [f"required: {', '.join(_named(k, tool) for k in tool.required)}"] if tool.required else []
    lines.append("")
    cfg = Config()
    rows = []
    for name in tool.sections or sections():
        section = getattr(cfg, name)
        for f in fields(section):
            choices = CHOICES.get(f"{name}.{f.name}")
            meaning = f.metadata.get("help", "")
            if choices and not all(c in meaning for c in choices):
                meaning += f" ({'|'.join(choices)})"
            old = [o for o, n in RENAMED.items() if n == f"{name}.{f.name}"]
            if old:
                meaning += f"; was {', '.join(old)}"
            rows.append((f"--{name}.{f.name} {getattr(section, f.name)!r}", meaning))
    width = max(len(r[0]) for r in rows)
    lines += [f"  {k.ljust(width)}  {m}" for k, m in rows]
    return "\n".join(lines)


def parse_command_line(argv, tool=TRAIN, base=None, default_preset=None, intro=""):
    """The one parser of every tool: -> (Config, positional arguments), not yet validated.
    base: a Config to start from (evaluation: the checkpoint's), else the dataclass defaults and
    the preset. --help prints usage() and exits 0."""
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        print(usage(tool, default_preset, intro))
        raise SystemExit(0)
    preset, pairs, rest = parse_overrides(argv, tool)
    cfg = Config() if base is None else base
    if preset or (default_preset and base is None):
        load_preset(cfg, preset or default_preset)
    for key, value in pairs:
        set_key(cfg, key, value)
    return cfg, rest


def _named(key, tool):
    """A key as the tool's user types it: its shorthand when it has one, else --key."""
    return next((a for a, k in {**tool.aliases, **tool.flags}.items() if k == key), f"--{key}")


def with_alias(err, tool):
    """A ConfigError about a key that has a shorthand names both: 'colorize.size (--size): ...'."""
    msg = str(err)
    for alias, key in {**tool.aliases, **tool.flags}.items():
        if msg.startswith(key + ":"):
            return ConfigError(f"{key} ({alias}){msg[len(key):]}")
    return err


def parse_tool(argv, tool, intro=""):
    """An inference tool's command line (gan-colorize, the demo): -> (validated Config,
    positional arguments); a bad value is a ConfigError that names the tool's shorthand too."""
    try:
        cfg, rest = parse_command_line(argv, tool, intro=intro)
        check(cfg, check_paths=False, training=False)
        for key in tool.required:
            section, name = key.split(".")
            if getattr(getattr(cfg, section), name) in ("", None):
                raise ConfigError(f"{key}: is required")
    except ConfigError as err:
        raise with_alias(err, tool) from None
    if tool.n_positional is not None and len(rest) != tool.n_positional:
        raise ConfigError(f"{tool.prog}: expected {tool.positional}, got {len(rest)} "
                          f"argument(s) {' '.join(rest)}".rstrip())
    return cfg, rest


def parse_commands(argv, commands, prog, about=""):
    """A command line with subcommands (`python -m gan_colorize.checkpoint export ...`):
    commands {name: Tool}; the first argument names the command, the rest is its own command
    line (parse_tool) -> (name, validated Config, positional arguments). --help before a
    command lists the commands; after one, that command's keys."""
    argv = list(argv)
    listing = "\n".join([f"usage: {prog} {{{','.join(commands)}}} [--help] ..."]
                        + ([about] if about else [])
                        + [f"  {name.ljust(max(map(len, commands)))}  {t.about}"
                           for name, t in commands.items()])
    if argv[:1] in (["-h"], ["--help"]):
        print(listing)
        raise SystemExit(0)
    if not argv or argv[0] not in commands:
        got = f"unknown command {argv[0]!r}" if argv else "no command given"
        raise ConfigError(f"{prog}: {got} (one of {', '.join(commands)}; --help lists them)")
    cfg, rest = parse_tool(argv[1:], commands[argv[0]])
    return argv[0], cfg, rest


def load_config(argv=(), default_preset=None, check_paths=True, tool=TRAIN):
    """Build, override and validate a training Config from command-line style arguments."""
    cfg, _ = parse_command_line(argv, tool, default_preset=default_preset)
    try:
        check(cfg, check_paths=check_paths)
    except ConfigError as err:
        raise with_alias(err, tool) from None
    return cfg


def one_line(err):
    """The message of a UserError as one line. One raised in a DataLoader worker comes back as
    "Caught UserError in DataLoader worker ...\nOriginal Traceback ...\n<module>.UserError: msg":
    only its last line, without the class name, is the user's message."""
    lines = str(err).strip().splitlines()
    if len(lines) > 1 and lines[0].startswith("Caught "):
        last = lines[-1]
        head, sep, rest = last.partition(": ")
        return rest if sep and head.rsplit(".", 1)[-1] == type(err).__name__ else last
    return " ".join(lines)


def cli_main(fn):
    """Run fn(); a UserError becomes `error: <message>` on stderr and exit status 2, Ctrl-C
    (outside the training loop, which saves and returns) `interrupted` and exit status 130."""
    def wrapped(*args, **kwargs):
        try:
            with SafeCtrlC():   # Ctrl-C inside the imports of torch & co. would abort the process
                return fn(*args, **kwargs)
        except UserError as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            # outside the training loop (imports, the data cache, evaluate, gan-colorize)
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped
