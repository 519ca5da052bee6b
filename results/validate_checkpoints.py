"""Score checkpoints on one run's validation samples (validation.py), e.g. x5 on x6's:

    python results/validate_checkpoints.py RUN_CHECKPOINT CHECKPOINT [CHECKPOINT ...] [--scale 1,0.75,0.5]

RUN_CHECKPOINT's config picks the datasets, masks and hints (what its run validated on); each
CHECKPOINT's G_ema is then scored in bf16 autocast, as the trainer does, and one line printed.
--scale: also score G_ema's ab multiplied by each factor (how much a plain chroma shrink gains).
"""
import sys

import torch

from gan_colorize.train import validation
from gan_colorize.model.checkpoint import checkpoint_config, load, load_generator


def main(argv):
    scales = [1.0]
    if "--scale" in argv:
        k = argv.index("--scale")
        scales = [float(x) for x in argv[k + 1].split(",")]
        argv = argv[:k] + argv[k + 2:]
    if len(argv) < 2:
        raise SystemExit(__doc__)
    ref, ckpts = argv[0], argv[1:]
    cfg = checkpoint_config(load(ref, map_location="cpu"), ref)
    cfg.data.workers = 0
    parts = validation.build_val_parts(cfg, torch.device("cpu"))
    for path in ckpts:
        g, _, _ = load_generator(path, torch.device("cpu"))
        for scale in scales:
            row = validation.score_parts(lambda *x: scale * g(*x), parts,
                                      lambda: torch.autocast("cpu", torch.bfloat16))
            print(path, "" if scale == 1 else f"ab x {scale:g}:", validation.summary(row, parts, False))


if __name__ == "__main__":
    main(sys.argv[1:])
