"""Mask drawing from a spec: a weighted sampler over the families of data/mask_families.py
(the spec grammar is core/specs.py), per-sample generators for evaluation, and the preview
command line `python -m gan_colorize.masks preview --families SPEC --out sheet.png`.
"""
import sys

import numpy as np
from PIL import Image, ImageDraw
from skimage import data as skimage_data

from ..core.errors import UserError
from ..core.parser import MASK_PREVIEW, cli_main, parse_commands
from ..core.specs import (FIXED_FAMILIES, IMAGE_FAMILIES, MaskSpecError, check_mask_spec,
                          is_fixed, list_mask_files, parse_impa_arg)
from .mask_families import FAMILIES, impa_mask, load_mask_file


# ---------------------------------------------------------------------------------------------
# sampling

class MaskSampler:
    """Weighted draws from a spec. `families` = distinct family names in spec order; the data
    pipeline stores a draw's family as an index into it."""

    def __init__(self, spec):
        self.spec = spec
        self.entries = check_mask_spec(spec)   # a missing mask file fails now, not in a data worker
        self.families = list(dict.fromkeys(e.family for e in self.entries))
        w = np.array([e.weight for e in self.entries], dtype=np.float64)
        self._p = w / w.sum()
        self.is_fixed = is_fixed(self.entries)
        self.needs_image = any(e.family in IMAGE_FAMILIES for e in self.entries)
        self.needs_segmentation = any(e.family == "segmentation" for e in self.entries)

    def __repr__(self):
        return f"MaskSampler({self.spec!r})"

    def sample(self, h, w, rng, image=None, segmentation=None):
        """One draw -> (mask float32 (h, w) {0,1}, family name)."""
        e = self.entries[int(rng.choice(len(self.entries), p=self._p))]
        m = FAMILIES[e.family](h, w, rng, image=image, segmentation=segmentation, arg=e.arg)
        return m, e.family

    def fixed_masks(self, h, w):
        """Every mask a fixed spec can produce (entries with weight > 0, in spec order; a folder
        gives all its files) -> list[(mask float32 (h, w), family)]. For pairing=all."""
        if not self.is_fixed:
            bad = next(e.label for e in self.entries if e.family not in FIXED_FAMILIES)
            raise MaskSpecError(f"every-mask pairing needs fixed mask families "
                                f"({', '.join(FIXED_FAMILIES)}); got {bad!r}")
        out = []
        for e in self.entries:
            if e.weight <= 0:
                continue
            if e.family == "impa":
                out += [(impa_mask(k, h, w), "impa") for k in parse_impa_arg(e.arg)]
            elif e.family == "file":
                out += [(load_mask_file(f, h, w), "file") for f in list_mask_files(e.arg)]
            else:
                out.append((FAMILIES[e.family](h, w, None), e.family))
        return out


def mask_rng(seed, index):
    """Per-sample generator for eval masks: the same (seed, index) always gives the same mask,
    independent of batch order or worker count."""
    return np.random.default_rng([int(seed), int(index)])


# ---------------------------------------------------------------------------------------------
# CLI: python -m gan_colorize.masks preview --families SPEC --out sheet.png

def _preview_image(size):
    """A sample photo for superpixels: skimage's astronaut, resized to (size, size, 3) uint8."""
    return np.asarray(Image.fromarray(skimage_data.astronaut()).resize((size, size), Image.BILINEAR))


def preview_sheet(spec, size=128, n=8, seed=0):
    """Contact sheet: one row per spec entry, n draws each (white = colour). -> (PIL image,
    list of skipped entry labels)."""
    entries = MaskSampler(spec).entries
    image = _preview_image(size) if any(e.family in IMAGE_FAMILIES for e in entries) else None
    rows, skipped = [], []
    for r, e in enumerate(entries):
        if e.family == "segmentation":
            skipped.append(e.label)
            continue
        tiles = [FAMILIES[e.family](size, size, np.random.default_rng([seed, r, c]),
                                    image=image, arg=e.arg) for c in range(n)]
        rows.append((e.label, tiles))
    if not rows:
        raise UserError("nothing to preview (segmentation needs a dataset's segmentation maps)")
    gap, label_w = 4, 110
    sheet = Image.new("L", (label_w + n * (size + gap), len(rows) * (size + gap) + gap), 96)
    draw = ImageDraw.Draw(sheet)
    for r, (label, tiles) in enumerate(rows):
        y = gap + r * (size + gap)
        draw.text((4, y + size // 2 - 6), label[:18], fill=255)
        for c, t in enumerate(tiles):
            tile = Image.fromarray((t * 255).astype(np.uint8))
            sheet.paste(tile, (label_w + c * (size + gap), y))
    return sheet, skipped


@cli_main
def main(argv=None):
    """`python -m gan_colorize.masks preview --families SPEC --out sheet.png [--size --n --seed]`
    (also gan-colorize-masks); its keys are the mask_preview section of the config."""
    _, cfg, _ = parse_commands(sys.argv[1:] if argv is None else argv, {"preview": MASK_PREVIEW},
                               "python -m gan_colorize.masks", __doc__.split("\n")[0])
    a = cfg.mask_preview
    if a.size < 8 or a.n < 1 or a.seed < 0:
        raise UserError("need --size >= 8, --n >= 1, --seed >= 0")
    sheet, skipped = preview_sheet(a.families, a.size, a.n, a.seed)
    for label in skipped:
        print(f"note: skipped {label!r}: no segmentation map in a preview", file=sys.stderr)
    try:
        sheet.save(a.out)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot write {a.out}: {' '.join(str(e).split())}") from None
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
