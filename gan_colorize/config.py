"""One typed configuration for training, evaluation and benchmarks.

A config is built in three layers: the dataclass defaults below (our default recipe on the
embedded `samples` photos), then a YAML preset (`--config configs/NAME.yaml` or just `NAME`),
then command-line overrides `--section.key value` (or `--section.key=value`). It is validated
before any work starts; every mistake is a ConfigError with one line that names the key.
"""
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import UserError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(UserError):
    """A bad config key or value; the message names the key."""

    def __init__(self, message=""):
        # keys and values are user text: a newline or other control character in one must not
        # break the one-line message, so they are shown escaped (\n, \x00, ...)
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message)))


@dataclass
class DataConfig:
    name: str = "samples"            # samples | flowers17 | flowers102 | folder
    root: str = ""                   # dataset folder; unused by `samples`
    size: int = 64                   # training crop, px, a multiple of 32
    cache_dir: str = "~/.cache/gan_colorize"
    workers: int = 2                 # DataLoader workers per process
    min_ab_range: float = 5.0        # images whose ab range is below this are left out
    val_fraction: float = 0.1        # `folder` split: share of images (by path hash) for val
    test_fraction: float = 0.1       # ... and for test


@dataclass
class MaskConfig:
    train: str = "impa:1,stripes:1,grid:1,rect:1,brush:1"  # family mixture for training
    eval: str = "impa:1"             # family mixture for the held-out sample grid and evaluation
    pairing: str = "random"          # random: a fresh mask per draw; all: every image x fixed mask


@dataclass
class ModelConfig:
    generator: str = "unet11"        # unet11 | seed
    discriminator: str = "patch"     # patch | seed
    width: float = 1.0               # channel multiplier for G and D
    spectral_norm: bool = False      # spectral norm in D


@dataclass
class LossConfig:
    adversarial: str = "vanilla"     # vanilla | lsgan | hinge
    adv_weight: float = 1.0
    label_smoothing: float = 0.0     # one-sided: real targets become 1 - label_smoothing
    real_target: str = "partial"     # partial: D sees ab_real*mask; full: ab_real (the study's bug)
    l1_weight: float = 100.0         # L1 against the desired output ab_real*mask
    mask_loss: str = "l2"            # l2 (squared) | huber
    mask_weight_in: float = 0.0      # weight of the mask loss inside the mask
    mask_weight_out: float = 100.0   # weight of the mask loss outside the mask
    huber_delta: float = 0.05        # in model ab units (x110 for Lab units)


@dataclass
class TrainConfig:
    steps: int = 2000                # optimiser steps (one D step + one G step each)
    batch_size: int = 16             # per process
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay: str = "none"           # none | linear (to 0 at the last step)
    decay_start: float = 0.5         # fraction of steps after which the linear decay starts
    ema_decay: float = 0.999         # G_ema; 0 copies G each step
    seed: int = 0
    device: str = "auto"             # auto | cpu | cuda
    precision: str = "auto"          # auto (bf16 on CUDA and on CPUs with AMX/AVX-512 bf16, else fp32) | fp32 | bf16
    channels_last: str = "auto"      # auto (on for CUDA) | on | off
    compile: bool = False            # torch.compile G and D
    log_every: int = 20              # steps between scalar logs
    sample_every: int = 200          # steps between image grids
    ckpt_every: int = 500            # steps between numbered checkpoints (latest.pt more often)
    latest_every: int = 100          # steps between latest.pt writes
    out_dir: str = "runs"
    name: str = ""                   # run folder name; empty -> <date>-<preset>-<hash>
    resume: str = ""                 # "" | auto | path/to/checkpoint.pt
    max_bad_steps: int = 20          # stop after this many non-finite steps in a row


@dataclass
class EvalConfig:
    split: str = "test"
    masks: str = "impa:1"            # family mixture, or a folder of mask files
    seed: int = 0
    batch_size: int = 16
    max_samples: int = 0             # 0 = the whole split
    size: int = 0                    # evaluation size; 0 = data.size


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    masks: MaskConfig = field(default_factory=MaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    preset: str = ""                 # the preset this config was built from, for run names

    def to_dict(self):
        return dataclasses.asdict(self)


CHOICES = {
    "data.name": ("samples", "flowers17", "flowers102", "folder"),
    "masks.pairing": ("random", "all"),
    "model.generator": ("unet11", "seed"),
    "model.discriminator": ("patch", "seed"),
    "loss.adversarial": ("vanilla", "lsgan", "hinge"),
    "loss.real_target": ("partial", "full"),
    "loss.mask_loss": ("l2", "huber"),
    "train.lr_decay": ("none", "linear"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.precision": ("auto", "fp32", "bf16"),
    "train.channels_last": ("auto", "on", "off"),
    "eval.split": ("train", "val", "test"),
}
# Shorthands that the CLIs accept besides the dotted keys.
ALIASES = {"--resume": "train.resume", "--device": "train.device", "--steps": "train.steps"}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _coerce(key, value, typ):
    """Turn a YAML or command-line value into `typ`, or raise a ConfigError naming `key`."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif typ is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key}: expected {typ.__name__}, got {value!r}")


def _section_types(section):
    return {f.name: f.type if isinstance(f.type, type) else eval(f.type) for f in fields(section)}


def _set(cfg, key, value):
    parts = key.split(".")
    if len(parts) != 2 or parts[0] not in {f.name for f in fields(Config)} or parts[0] == "preset":
        raise ConfigError(f"{key}: unknown config key (sections: data, masks, model, loss, train, eval)")
    section = getattr(cfg, parts[0])
    types = _section_types(section)
    if parts[1] not in types:
        raise ConfigError(f"{key}: unknown config key (known in {parts[0]}: {', '.join(types)})")
    setattr(section, parts[1], _coerce(key, value, types[parts[1]]))


def _apply_dict(cfg, d, source):
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(d).__name__}")
    for section, values in d.items():
        if section == "preset":
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{section}: expected a mapping in {source}, got {values!r}")
        for k, v in values.items():
            _set(cfg, f"{section}.{k}", v)


def find_preset(name):
    """A preset path: an existing file, or NAME / NAME.yaml under configs/."""
    for cand in (Path(name), CONFIG_DIR / name, CONFIG_DIR / f"{name}.yaml"):
        if cand.is_file():
            return cand
    raise ConfigError(f"--config: no such preset or file: {name}")


def load_preset(cfg, name):
    import yaml
    path = find_preset(name)
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "parse error"
        raise ConfigError(f"--config: {path} is not valid YAML: {first}") from None
    _apply_dict(cfg, d, str(path))
    cfg.preset = path.stem
    return cfg


def from_dict(d):
    """A Config from `to_dict()` output (checkpoints, saved config.json); validates keys and types."""
    cfg = Config()
    _apply_dict(cfg, {k: v for k, v in d.items() if k != "preset"}, "config dict")
    cfg.preset = d.get("preset", "")
    return cfg


def parse_overrides(argv):
    """['--a.b', 'v', '--c.d=w', '--resume', 'auto'] -> (preset or None, [(key, value)])."""
    preset, pairs, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"{arg}: unexpected argument (use --section.key value)")
        name, eq, value = arg.partition("=")
        if not eq:
            if i + 1 >= len(argv):
                raise ConfigError(f"{name}: missing value")
            value = argv[i + 1]
            i += 1
        i += 1
        if name == "--config":
            preset = value
        elif name in ALIASES:
            pairs.append((ALIASES[name], value))
        else:
            pairs.append((name[2:], value))
    return preset, pairs


def usage(prog, default_preset=None):
    """The --help text: every key with its default, grouped by section."""
    lines = [f"usage: {prog} [--config PRESET_OR_YAML] [--section.key VALUE ...]",
             f"presets in {CONFIG_DIR}: " + ", ".join(sorted(p.stem for p in CONFIG_DIR.glob('*.yaml')))
             + (f" (default: {default_preset})" if default_preset else ""),
             "shorthands: " + ", ".join(f"{a} = --{k}" for a, k in ALIASES.items()), ""]
    cfg = Config()
    for f in fields(Config):
        if f.name == "preset":
            continue
        section = getattr(cfg, f.name)
        for key, value in dataclasses.asdict(section).items():
            choices = CHOICES.get(f"{f.name}.{key}")
            extra = f"  ({'|'.join(choices)})" if choices else ""
            lines.append(f"  --{f.name}.{key} {value!r}{extra}")
    return "\n".join(lines)


def load_config(argv=(), default_preset=None, check_paths=True, prog="train.py"):
    """Build, override and validate a Config from command-line style arguments."""
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        print(usage(prog, default_preset))
        raise SystemExit(0)
    preset, pairs = parse_overrides(argv)
    cfg = Config()
    if preset or default_preset:
        load_preset(cfg, preset or default_preset)
    for key, value in pairs:
        _set(cfg, key, value)
    validate(cfg, check_paths=check_paths)
    return cfg


def validate(cfg, check_paths=True, training=True):
    """Raise ConfigError naming the first bad key; cheap, so it runs before any work.
    training=False (evaluation) skips the checks that only the training loader needs."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")

    def need(key, ok, what):
        if not ok:
            section, name = key.split(".")
            raise ConfigError(f"{key}: {getattr(getattr(cfg, section), name)!r} {what}")

    d, t, l, e = cfg.data, cfg.train, cfg.loss, cfg.eval
    need("data.size", d.size >= 32 and d.size % 32 == 0, "must be a positive multiple of 32")
    need("eval.size", e.size == 0 or (e.size >= 32 and e.size % 32 == 0),
         "must be 0 or a positive multiple of 32")
    need("data.workers", d.workers >= 0, "must be >= 0")
    need("data.min_ab_range", d.min_ab_range >= 0, "must be >= 0")
    need("data.val_fraction", 0 <= d.val_fraction < 1, "must be in [0, 1)")
    need("data.test_fraction", 0 <= d.test_fraction < 1 and d.val_fraction + d.test_fraction < 1,
         "must be in [0, 1) with val_fraction + test_fraction < 1")
    need("model.width", 0 < cfg.model.width <= 8, "must be in (0, 8]")
    for k in ("lr_g", "lr_d"):
        need(f"train.{k}", math.isfinite(getattr(t, k)) and getattr(t, k) > 0, "must be > 0")
    for k in ("beta1", "beta2"):
        need(f"train.{k}", 0 <= getattr(t, k) < 1, "must be in [0, 1)")
    need("train.ema_decay", 0 <= t.ema_decay < 1, "must be in [0, 1)")
    need("train.decay_start", 0 <= t.decay_start < 1, "must be in [0, 1)")
    for k in ("steps", "batch_size", "log_every", "sample_every", "ckpt_every", "latest_every",
              "max_bad_steps"):
        need(f"train.{k}", getattr(t, k) >= 1, "must be >= 1")
    need("eval.batch_size", e.batch_size >= 1, "must be >= 1")
    need("eval.max_samples", e.max_samples >= 0, "must be >= 0")
    need("loss.label_smoothing", 0 <= l.label_smoothing < 0.5, "must be in [0, 0.5)")
    need("loss.huber_delta", l.huber_delta > 0, "must be > 0")
    for k in ("adv_weight", "l1_weight", "mask_weight_in", "mask_weight_out"):
        need(f"loss.{k}", math.isfinite(getattr(l, k)) and getattr(l, k) >= 0, "must be >= 0")
    if d.name != "samples":
        need("data.root", bool(d.root), f"must be set for data.name={d.name}")
        if check_paths:
            need("data.root", os.path.isdir(os.path.expanduser(d.root)), "does not exist or is not a folder")
    if t.resume not in ("", "auto") and check_paths:
        need("train.resume", os.path.isfile(t.resume), "is not a file (use auto or a checkpoint path)")

    from .masks import MaskSpecError, MaskSampler  # lazy: masks pulls in skimage
    for key, spec in (("masks.train", cfg.masks.train), ("masks.eval", cfg.masks.eval)):
        try:
            sampler = MaskSampler(spec)
        except MaskSpecError as err:
            raise ConfigError(f"{key}: {err}") from None
        if training and key == "masks.train" and cfg.masks.pairing == "all" and not sampler.is_fixed:
            raise ConfigError(f"masks.pairing: 'all' needs fixed mask families (impa, full, empty, "
                              f"file), got {spec!r}")
    if not os.path.isdir(os.path.expanduser(e.masks)):
        try:
            MaskSampler(e.masks)
        except MaskSpecError as err:
            raise ConfigError(f"eval.masks: {err}") from None
    return cfg


def save_config(cfg, path):
    """Write the resolved config as JSON, atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)


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
        from .interrupt import SafeCtrlC
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
