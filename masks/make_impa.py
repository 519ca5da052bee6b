"""Regenerate masks/impa/NN_<name>.png (10 binary 256x256 PNGs, mode L, 0/255) from
gan_colorize.masks.impa_masks, so the files and the generator can never drift apart
(tests/test_masks.py checks they are equal).

    python masks/make_impa.py [--size 256] [--out masks/impa]
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gan_colorize.core.specs import IMPA_NAMES  # noqa: E402
from gan_colorize.data.mask_families import impa_masks


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=256)
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--out", default=os.path.join(here, "impa"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for k, (name, m) in enumerate(zip(IMPA_NAMES, impa_masks(args.size, args.size))):
        path = os.path.join(args.out, f"{k:02d}_{name}.png")
        Image.fromarray((m * 255).astype(np.uint8))  # 2-D uint8 -> mode L.save(path)
        print(os.path.relpath(path))


if __name__ == "__main__":
    main()
