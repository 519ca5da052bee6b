"""The benchmark's cases: evaluate.py's samples of a test set written as plain files that any
colorization method can read (its command line: `python -m gan_colorize.benchmark export`,
apps/benchmark_cli.py; scoring a method's outputs: benchmark_score.py).

A case is one sample of evaluate.py: the same image of the split, in the same order (index i),
its mask drawn from masks.mask_rng(eval.seed, i) and its hints from hints.hint_rng(eval.seed, i)
with hints.fixed_hints (5 px squares at 256 px, scaled), at every hint count. Two resolutions:

  size N > 0  evaluate.py's samples at --eval.size N exactly: the cached image resized to a
              shorter side of N, its centre N x N crop, the mask and hints drawn at N px. A
              model scored on these cases gives evaluate.py's numbers (up to PNG rounding).
  size 0      full resolution: the same centre square of the original file at its own shorter
              side (BSDS500: 321 x 321), no resizing; the mask and hints drawn there from the
              same per-sample generators. Random mask families draw other shapes at another size,
              so these are not evaluate.py's masks pixel for pixel: the same rule, the same seed.

Written to --out (the cases; hand gray/, masks/ and hints/ to the method):
  gray/<id>.png        the input: uint8 gray, the sRGB gray of the photo's CIELAB L
  masks/<id>.png       uint8 0/255, 255 = colour wanted there
  hints/<N>/<id>.png   RGBA: opaque pixels are hints (gan-colorize --hints), coloured with the
                       hint's ab at the pixel's own L; transparent elsewhere (N = 0: all)
  manifest.json        the set, its rules and, per case: id, source image, mask family and
                       seed, shape, and the md5 of every file's pixels
and, kept apart (--truth, default <out>/truth), truth/<id>.png: the photo (RGB), for the scorer.
md5s are of the decoded pixels (uint8 bytes, row-major), not of the PNG bytes, which differ
between zlib builds; the same export gives the same md5s on every machine.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..core import color
from ..core.atomic import write_atomic
from ..core.checks import hint_counts
from ..core.errors import UserError
from ..core.imageio import read_rgb
from ..data.cache import read_segmentation
from ..data.dataset import MaskedImageDataset, centre_crop, build_loader
from ..data.hints import EVAL_SIDE, fixed_hints, hint_rng
from ..data.splits import list_split
from .sheets import save_png

MANIFEST = "manifest.json"
VERSION = 1
# the keys that define the samples, written to the manifest and to the evaluate.py command
SAMPLE_KEYS = ("data.name", "data.root", "data.min_ab_range", "data.flowers102_split",
               "data.val_fraction", "data.test_fraction", "eval.split", "eval.masks",
               "masks.pairing", "eval.seed", "eval.max_samples")


def _get(cfg, key):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def pixels_md5(arr):
    """md5 of an image's decoded pixels (uint8, row-major): what the manifest records."""
    return hashlib.md5(np.ascontiguousarray(arr, dtype=np.uint8).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# the samples at full resolution

class _Originals:
    """The images of an ImageCache read from their files at full size (image(i), segmentation(i)
    as ImageCache gives them, same order and keys)."""

    def __init__(self, cache, records):
        by_key = {r.key: r for r in records}
        self.records = [by_key[k] for k in cache.keys]
        self.name, self.split, self.keys, self.has_seg = cache.name, cache.split, cache.keys, cache.has_seg
        self._shape = {}

    def __len__(self):
        return len(self.records)

    def image(self, i):
        img = read_rgb(self.records[i].path)
        self._shape[i] = img.shape[:2]
        return img

    def segmentation(self, i):
        if not self.has_seg[i]:
            return None
        return read_segmentation(self.records[i], self._shape[i])


class FullResolution(MaskedImageDataset):
    """evaluate.py's eval items (dataset `ds`: same images, order, masks' and hints' seeds) at
    each image's own resolution: the centre square of the original at its shorter side."""

    def __init__(self, ds, records):
        self.__dict__.update(ds.__dict__)   # ds's state (ids, sampler, seed, pairing), not a rebuild
        self.cache = _Originals(ds.cache, records)
        self._fixed_at = {}

    def _eval_view(self, img, seg):
        s = min(img.shape[:2])
        return centre_crop(img, s), None if seg is None else centre_crop(seg, s)

    def _mask(self, i, img, seg, rng):
        h, w = img.shape[:2]
        if self.fixed is not None:   # pairing=all or a mask folder: the same masks at this size
            if (h, w) not in self._fixed_at:
                self._fixed_at[(h, w)] = self.sampler.fixed_masks(h, w)
            fixed = self._fixed_at[(h, w)]
            return fixed[i % len(fixed)]
        return self.sampler.sample(h, w, rng, image=img, segmentation=seg)


def case_dataset(cfg, size):
    """-> (dataset, number of cases): evaluate.py's eval dataset at `size` (> 0), or its
    FullResolution twin (size 0); the first eval.max_samples items when that is > 0."""
    e = cfg.eval
    loader, sampler = build_loader(cfg, e.split, train=False, size=size or cfg.data.size,
                                   mask_spec=e.masks, batch_size=1, max_samples=e.max_samples)
    ds = loader.dataset
    if size == 0:
        ds = FullResolution(ds, list_split(cfg.data, e.split))
    return ds, len(sampler)


# ---------------------------------------------------------------------------------------------
# files

def gray_image(rgb):
    """uint8 (H,W,3) -> uint8 (H,W): the sRGB gray whose CIELAB L is the photo's."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    L = color.rgb_to_lab(x)[:, :1]
    g = color.lab_to_rgb(torch.cat([L, torch.zeros_like(L).expand(-1, 2, -1, -1)], 1)).mean(1)
    return (g[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def hint_image(rgb, hint_ab, hint_mask):
    """The RGBA hint file of a hint set: rgb uint8 (H,W,3) the photo (its L colours each hinted
    pixel), hint_ab (2,H,W) model units, hint_mask (1,H,W) -> uint8 (H,W,4)."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    L = color.rgb_to_lab(x)[:, :1]
    rgb_h = color.lab_to_rgb(torch.cat([L, color.denormalize_ab(hint_ab[None].float())], 1))
    out = np.zeros(rgb.shape[:2] + (4,), np.uint8)
    on = hint_mask[0].numpy() > 0.5
    px = (rgb_h[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    out[on, :3] = px[on]
    out[on, 3] = 255
    return out


def _evaluate_command(cfg, size, counts, n):
    """The evaluate.py command that scores a checkpoint on the same samples (size > 0 only)."""
    if not size:
        return None
    keys = [k for k in SAMPLE_KEYS if k != "eval.max_samples"]
    parts = ["python evaluate.py --checkpoint CHECKPOINT"]
    parts += [f"--{k} {_get(cfg, k)}" for k in keys if _get(cfg, k) != ""]
    parts += [f"--eval.size {size}", f"--hints.eval {','.join(map(str, counts))}",
              f"--eval.max_samples {n}"]
    return " ".join(parts)


def _prepare_out(out, truth):
    for folder in (out, truth):
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UserError(f"{folder} exists and is not an empty folder: export writes a new one")
    try:
        for sub in ("gray", "masks", "hints"):
            (out / sub).mkdir(parents=True, exist_ok=True)
        truth.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {out}: {err.strerror or err}") from None


def _write_case(ds, i, counts, seed, out, truth):
    """Case i's files -> its manifest entry."""
    item = ds[i]
    rgb = item["rgb"].permute(1, 2, 0).numpy()
    mask = item["mask"]
    cid = f"{i:05d}"
    gray, mask_u8 = gray_image(rgb), (mask[0].numpy() > 0.5).astype(np.uint8) * 255
    save_png(gray, out / "gray" / f"{cid}.png")
    save_png(mask_u8, out / "masks" / f"{cid}.png")
    save_png(rgb, truth / f"{cid}.png")
    _, ab = color.rgb_uint8_to_model(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None])
    md5 = {"gray": pixels_md5(gray), "mask": pixels_md5(mask_u8), "hints": {}}
    n_hinted = {}
    for c in counts:   # batch_fixed_hints' draw: hint_rng(seed, i), the sample's own generator
        hint_ab, hint_mask = fixed_hints(ab[0], mask, hint_rng(seed, i), c)
        rgba = hint_image(rgb, hint_ab, hint_mask)
        (out / "hints" / str(c)).mkdir(exist_ok=True)
        save_png(rgba, out / "hints" / str(c) / f"{cid}.png")
        md5["hints"][str(c)] = pixels_md5(rgba)
        n_hinted[str(c)] = int(hint_mask.sum())
    key = ds.cache.keys[int(ds.ids[i // ds.n_masks])]
    return {"id": cid, "index": i, "source": key, "seed": seed,
            "family": ds.sampler.families[int(item["family"])],
            "shape": list(rgb.shape[:2]), "coverage": round(float(mask.mean()), 6),
            "hinted_px": n_hinted, "md5": md5, "truth_md5": pixels_md5(rgb)}


def export_cases(cfg, out, truth="", size=0, counts=None, set_name="", progress=True):
    """Write the cases of cfg's test set (module docstring) at the hint counts `counts` (text,
    default cfg's hints.benchmark) -> the manifest dict."""
    if cfg.data.mix:
        raise UserError("data.mix: export one dataset at a time (--data.name, --data.root)")
    out = Path(out).expanduser()
    truth = Path(truth).expanduser() if truth else out / "truth"
    counts = hint_counts(cfg.hints.benchmark if counts is None else counts)
    ds, n = case_dataset(cfg, size)
    _prepare_out(out, truth)
    seed = cfg.eval.seed
    cases = []
    for i in tqdm(range(n), desc="export", unit="case", disable=not progress, dynamic_ncols=True):
        cases.append(_write_case(ds, i, counts, seed, out, truth))
    manifest = {
        "benchmark": "gan_colorize partial colorization", "version": VERSION,
        "set": set_name, "size": size, "resolution": "full" if size == 0 else f"{size} px",
        "hints": counts, "hint_side": f"{EVAL_SIDE} px at 256 px, scaled to the case",
        "samples": {k: _get(cfg, k) for k in SAMPLE_KEYS},
        "rules": {"mask": "masks.mask_rng(eval.seed, index) draws from eval.masks on the case",
                  "hints": "hints.fixed_hints(count) from hints.hint_rng(eval.seed, index)",
                  "outputs": "<outputs>/<N>/<id>.png (any image format and size) per hint count N"},
        "truth": os.path.relpath(truth, out) if truth.is_relative_to(out) else str(truth),
        "evaluate": _evaluate_command(cfg, size, counts, n),
        "cases": cases,
    }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def load_manifest(cases):
    """The manifest of a cases folder; a missing or unreadable one is a one-line UserError."""
    path = Path(cases).expanduser() / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("version") != VERSION or not isinstance(manifest.get("cases"), list):
            raise ValueError(f"not a version-{VERSION} manifest")
    except FileNotFoundError:
        raise UserError(f"--cases {cases}: no {MANIFEST} (write one with `export`)") from None
    except (OSError, ValueError) as err:
        raise UserError(f"--cases {cases}: cannot read {MANIFEST}: {err}") from None
    return manifest


def truth_dir(cases, manifest):
    t = Path(manifest["truth"])
    return t if t.is_absolute() else Path(cases).expanduser() / t
