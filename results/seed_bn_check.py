"""How much of the `seed` runs' colour outside the mask comes from BatchNorm's running statistics?

    python results/seed_bn_check.py [--runs runs/flowers17_64] [RUN ...]

The study's generator (networks.py, `seed`) normalises both stems with ONE BatchNorm, so its
running statistics are a blend of the gray stem's and the mask stem's; in eval mode (how
evaluate.py and the sample grids run G_ema) each stem is normalised with that blend. This scores
the same 40 Flowers17 images (every 17th file, 64 px, the 10 impa masks in turn) with G_ema in
eval mode and in train mode (batch statistics, the batch being these 40 images), and prints the
mean chroma outside the mask (Lab units, as `leak` without its per-image averaging) and the mean
squared ab error inside it. A quick diagnostic, not a metric of RESULTS.md's tables.
"""
import argparse
import glob
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gan_colorize.model.checkpoint import load_generator
from gan_colorize.core.color import rgb_uint8_to_model
from gan_colorize.data.mask_families import impa_masks


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="runs/flowers17_64")
    p.add_argument("--data", default="../shared/datasets/flowers17/jpg")
    p.add_argument("run", nargs="*", default=["r2_study_recipe", "r3_study_partial"])
    args = p.parse_args()
    files = sorted(glob.glob(f"{args.data}/*.jpg"))[::17][:40]
    rgb = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64))) for f in files])
    gray, ab = rgb_uint8_to_model(torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous())
    masks = torch.as_tensor(np.asarray(impa_masks(64, 64)))
    mask = masks[torch.arange(len(files)) % len(masks)].float().unsqueeze(1)
    for run in args.run:
        g, _, _ = load_generator(Path(args.runs) / run / "checkpoints" / "latest.pt")
        for mode in ("eval", "train"):
            g.train(mode == "train")
            with torch.no_grad():
                out = g(gray, mask) * 110
            outside = (out.norm(dim=1, keepdim=True) * (1 - mask)).sum() / (1 - mask).sum()
            mse_in = (((out - ab * 110) ** 2).mean(1, keepdim=True) * mask).sum() / mask.sum()
            print(f"{run:20s} {mode:5s}  chroma outside {outside:6.2f}  mse inside {mse_in:7.1f}")


if __name__ == "__main__":
    main()
