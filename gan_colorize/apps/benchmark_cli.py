"""The benchmark's command line, `python -m gan_colorize.benchmark COMMAND` (gan-colorize-benchmark):
any colorization method scored on evaluate.py's cases with evaluate.py's metrics.

    export --set bsds500 --data.root DIR --out CASES [--size 0] [--hints 0,1,3,10] [--truth DIR]
           writes the cases (eval/benchmark_cases.py): gray/, masks/, hints/<N>/, manifest.json,
           and the ground truth apart
    fill   --cases CASES --method mean|nearest|levin --out OUTPUTS
           runs a hint fill without learning on the cases (model/hint_fill.py): the floor
    score  --cases CASES --outputs OUTPUTS [--out REPORT] [--name NAME]
           scores a method's outputs, <OUTPUTS>/<N>/<id>.png (eval/benchmark_score.py)

Our own model enters as any method does: gan-colorize on the cases, one hint count at a time,
    gan-colorize --mask CASES/masks --hints CASES/hints/N --out OUTPUTS/N CASES/gray
(its <id>_color.png files are taken as the outputs). Keys: the benchmark section, plus the data,
eval and masks keys that define evaluate.py's samples (data.name, data.root, eval.split,
eval.masks, eval.seed, masks.pairing, ...), which --set fills in for a named test set.
"""
import sys
from pathlib import Path

import numpy as np

from ..core.checks import check
from ..core.config import ConfigError, set_key
from ..core.errors import UserError
from ..core.parser import BENCHMARK, cli_main, parse_command_line, parse_overrides, usage, with_alias
from ..eval.benchmark_sets import set_keys

COMMANDS = ("export", "fill", "score")
INTRO = ("Commands: export (a test set's cases as files), fill (a hint fill without learning on "
         "the cases),\nscore (a method's outputs on the cases). See `python -m "
         "gan_colorize.benchmark` in README.md, Benchmark.")


def parse_args(argv):
    """-> (command, validated Config). The named set (--set) fills the sample keys not given."""
    argv = list(argv)
    if not argv or "-h" in argv or "--help" in argv:
        print(usage(BENCHMARK, intro=INTRO))
        raise SystemExit(0 if argv else 2)
    _, pairs, rest = parse_overrides(argv, BENCHMARK)
    cfg, _ = parse_command_line(argv, BENCHMARK)
    if len(rest) != 1 or rest[0] not in COMMANDS:
        raise UserError(f"expected one command, {' | '.join(COMMANDS)}; got {' '.join(rest) or 'none'}")
    for key, value in set_keys(cfg.benchmark.set, {k for k, _ in pairs}):
        set_key(cfg, key, value)
    try:
        check(cfg, check_paths=False, training=False)
    except ConfigError as err:
        raise with_alias(err, BENCHMARK) from None
    need = {"export": ("out",), "fill": ("cases", "out"), "score": ("cases", "outputs")}[rest[0]]
    for key in need:
        if not getattr(cfg.benchmark, key):
            raise UserError(f"{rest[0]}: --{key} is required (see --help)")
    return rest[0], cfg


def run_fill(cases, out, method, progress=True):
    """Write <out>/<N>/<id>.png: the cases' hints spread over their masks by `method` (a hint
    fill of model/hint_fill.py) at the case's resolution, joined to the gray input's L; a case
    without hints (N = 0) stays gray. -> number of images written."""
    # torch and the models load only now, after the command line was checked
    import torch
    from tqdm import tqdm

    from ..core.color import denormalize_ab, normalize_l, rgb_to_lab
    from ..core.imageio import read_rgb
    from ..data.hints import load_hints
    from ..eval.benchmark_cases import load_manifest
    from ..eval.sheets import save_png
    from ..model.hint_fill import baseline_fills
    from .api import lab_to_uint8

    manifest, cases, out = load_manifest(cases), Path(cases).expanduser(), Path(out).expanduser()
    n = 0
    for case in tqdm(manifest["cases"], desc=f"fill {method}", unit="case", disable=not progress,
                     dynamic_ncols=True):
        cid = case["id"]
        x = torch.from_numpy(read_rgb(cases / "gray" / f"{cid}.png")).permute(2, 0, 1)[None].float() / 255
        L = rgb_to_lab(x)[:, :1]
        m = read_rgb(cases / "masks" / f"{cid}.png")[..., 0] >= 128
        mask = torch.from_numpy(m.astype(np.float32))[None, None]
        for count in manifest["hints"]:
            hints = load_hints(cases / "hints" / str(count) / f"{cid}.png", *m.shape)
            ab = baseline_fills(normalize_l(L), hints.ab[None], hints.mask[None], mask,
                                names=(method,))[method]
            (out / str(count)).mkdir(parents=True, exist_ok=True)
            save_png(lab_to_uint8(L, denormalize_ab(ab)), out / str(count) / f"{cid}.png")
            n += 1
    return n


@cli_main
def main(argv=None):
    """`python -m gan_colorize.benchmark export|fill|score ...`; see the module docstring."""
    command, cfg = parse_args(sys.argv[1:] if argv is None else argv)
    b = cfg.benchmark
    if command == "export":
        from ..eval.benchmark_cases import export_cases   # deferred: imports torch
        manifest = export_cases(cfg, b.out, truth=b.truth, size=b.size, counts=cfg.hints.benchmark,
                                set_name=b.set)
        print(f"wrote {len(manifest['cases'])} cases x hint counts {manifest['hints']} to {b.out}")
    elif command == "fill":
        n = run_fill(b.cases, b.out, b.method)
        print(f"wrote {n} {b.method} fills to {b.out}")
    else:
        from ..eval.benchmark_score import score   # deferred: imports torch
        score(b.cases, b.outputs, out=b.out or None, name=b.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
