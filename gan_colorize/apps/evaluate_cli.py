"""The evaluate.py command line (gan-colorize-evaluate): the checkpoint's config with the
command line's keys on top, checked before torch loads, then eval/evaluation.py on each
dataset of the run. See eval/evaluation.py for what is scored and written.
"""
import copy
import os
import re
import sys
from pathlib import Path

from ..core.checks import check
from ..core.config import RENAMED, ConfigError
from ..core.errors import UserError
from ..core.parser import EVALUATE, cli_main, parse_command_line, parse_overrides, usage, with_alias

INTRO = ("Scores a checkpoint's G_ema; the config is the checkpoint's own, and the keys given "
         "here override it\n(model.*, hints.enabled and hints.fill cannot change). Any key of "
         "any section is accepted; the evaluation ones are listed.")


def parse_args(argv):
    """-> (checkpoint path, the command line's arguments). Keys and types are checked here,
    against the defaults, before torch loads; --help prints the keys and exits."""
    argv = list(argv)
    if "-h" in argv or "--help" in argv:
        print(usage(EVALUATE, intro=INTRO))
        raise SystemExit(0)
    _, pairs, _ = parse_overrides(argv, EVALUATE)
    if any(key == "config" for key, _ in pairs):
        raise ConfigError("--config: evaluation starts from the checkpoint's config; "
                          "override single keys (--section.key VALUE) instead")
    try:
        probe, _ = parse_command_line(argv, EVALUATE)
    except ConfigError as err:
        raise with_alias(err, EVALUATE) from None
    if not probe.eval.checkpoint:
        raise UserError("--checkpoint is required (e.g. runs/RUN/checkpoints/latest.pt)")
    return probe.eval.checkpoint, argv


def eval_config(saved, argv):
    """The checkpoint's config `saved` with the command line `argv` applied on top, checked."""
    cfg, _ = parse_command_line(argv, EVALUATE, base=copy.deepcopy(saved))
    keys = {RENAMED.get(key, key) for key, _ in parse_overrides(argv, EVALUATE)[1]}
    if cfg.data.mix and keys & {"data.name", "data.root"} and "data.mix" not in keys:
        cfg.data.mix = ""   # one dataset named on the command line: score it, not the mixture
    if cfg.model != saved.model or architecture(cfg.hints) != architecture(saved.hints):
        raise ConfigError("model.*, hints.enabled, hints.fill: the architecture comes from the "
                          "checkpoint and cannot be overridden for evaluation")
    if not cfg.hints.enabled and cfg.hints.eval.replace(" ", "") not in ("0", ""):
        raise ConfigError(f"hints.eval: {cfg.hints.eval!r}: this checkpoint was trained without "
                          f"colour hints (hints.enabled off); only 0 can be scored")
    # data.root and friends are checked by the data pipeline, with their own messages
    try:
        check(cfg, check_paths=False, training=False)
    except ConfigError as err:
        raise with_alias(err, EVALUATE) from None
    return cfg


def architecture(hints_cfg):
    """The hint settings that shape the network (the rest are evaluation choices)."""
    return hints_cfg.enabled, hints_cfg.fill


def mask_slug(spec):
    """A folder-name-safe short form of a mask spec or folder: 'impa:1,brush' -> 'impa_1_brush'."""
    p = os.path.expanduser(spec)
    text = (Path(p).resolve().name or "masks") if os.path.isdir(p) else spec
    return re.sub(r"[^A-Za-z0-9=.-]+", "_", text).strip("_.")[:80] or "masks"


def default_out(ckpt, split, spec):
    ckpt = Path(ckpt)
    run_dir = ckpt.parents[1] if ckpt.parent.name == "checkpoints" else ckpt.parent
    return run_dir / "eval" / f"{split}-{mask_slug(spec)}"


@cli_main
def main(argv=None):
    """`python evaluate.py --checkpoint C [--out DIR] [--section.key VALUE ...]`."""
    ckpt, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    # torch loads only now, after the command line was checked (fast --help and typos)
    from ..eval.evaluation import evaluate
    from ..data.mixture import data_parts
    from ..model.checkpoint import checkpoint_config, load
    state = load(ckpt, map_location="cpu")
    cfg = eval_config(checkpoint_config(state, ckpt), overrides)
    out = cfg.eval.out or default_out(ckpt, cfg.eval.split, cfg.eval.masks)

    def log(line, file=sys.stdout):
        print(line, file=file, flush=True)

    parts = data_parts(cfg.data)
    if len(parts) == 1:
        evaluate(ckpt, cfg, state, out, log=log)
        return 0
    for k, part in enumerate(parts, 1):   # a mixture: each part on its own
        log(f"part {k} of {len(parts)}: {part.label} ({part.data.name} at {part.data.root or '-'})")
        part_cfg = copy.deepcopy(cfg)
        part_cfg.data = part.data
        evaluate(ckpt, part_cfg, state, Path(out) / part.label, log=log)
    return 0


if __name__ == "__main__":
    main()
