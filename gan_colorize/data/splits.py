"""Split lists: which source images make up the train / val / test split of a dataset.

list_split(cfg.data, split) -> [Record]; nothing is decoded here (see cache.py for that).
Sources (`data.name`) and their split rules:

- `flowers17`  root holds jpg/image_0001.jpg ... (or root is that jpg folder). With
  root/datasplits.mat: the official split 1 (trn1 / val1 / tst1, 1-based ids; 40/20/20 per class).
  Without it, our own fixed 40/20/20 per class: image N is in class (N-1)//80; within a class the
  80 ids are ordered by sha1("flowers17:<N>") and the first 40 are train, the next 20 val, the
  last 20 test. Hash order, not numpy's RNG, so the split never changes with library versions,
  and an image's split does not depend on which other files are present. Segmentations from
  root/trimaps/image_NNNN.png where present (colour-coded trimaps; see cache._seg_foreground).
- `flowers102` root holds jpg/image_00001.jpg ... and setid.mat (required: trnid / valid /
  tstid). data.flowers102_split: `official` (the default) is train = trnid (1020), val = valid
  (1020), test = tstid (6149); `train+test` trains on trnid + tstid (7169) and keeps valid (1020)
  as both val and test, since a colorization model needs no 6149-image classification test set.
  Either way, the Flowers102 images listed in dedup.FLOWERS102_DUPLICATES (near-duplicates of
  Flowers17 images, 563 of them; see dedup.py) are left out of train, whichever Flowers17 split
  (official or ours) they would leak into; val and test keep them. Segmentations from
  root/segmim/segmim_NNNNN.jpg where present.
- `bsds500`    root is BSDS500's `data` folder (BSR/BSDS500/data): images/<split>/<id>.jpg with
  the human segmentations groundTruth/<split>/<id>.mat (train / val / test as published: 200 /
  100 / 200 images). An image without its .mat is listed without segmentation. The .mat files
  are read by cache.py into label maps, one per annotator (seg_kind "bsds"), which the mask
  family `segmentation` turns into object masks (see masks.py).
- `folder`     every image under root (jpg/jpeg/png/bmp/tif/tiff/webp, any case, hidden files
  and folders skipped). u = int(sha1(relative posix path)[:15], 16) / 16**15 in [0,1):
  test if u < data.test_fraction, val if u < data.test_fraction + data.val_fraction, else train.
  A folder with fewer than SMALL_FOLDER images uses all of them for every split (with a warning).
- `split_folders` a folder whose first level names the split: root/train/**, root/test/** and
  root/val/** (images found as `folder` finds them). Without a val/ folder, val is drawn from
  train by the same path hash as `folder` (the share data.val_fraction; train keeps the rest),
  so the published test folder stays untouched, e.g. ../shared/datasets/intel_scenes.
- `samples`    the 5 colour photos bundled inside scikit-image (astronaut, chelsea, coffee,
  rocket, the left stereo_motorcycle view), read straight from its data folder: no network.
  Every split is all 5 photos: it is a smoke-test / demo dataset, not a benchmark.

The fractions and data.flowers102_split are trusted to be validated (checks.check). The root
is checked here, against the file system (evaluation validates without paths), as are missing
images and empty splits: each is a UserError.
"""
import functools
import hashlib
import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import skimage
from scipy.io import loadmat

from ..core.config import CHOICES
from ..core.errors import UserError
from ..core.imageio import IMAGE_EXTENSIONS
from .dedup import read_duplicates

SPLITS = ("train", "val", "test")
SMALL_FOLDER = 10           # folders with fewer images use all of them for every split
SAMPLE_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")


@dataclass(frozen=True)
class Record:
    """One source image: absolute path, a stable key (relative path), optional segmentation."""
    path: str
    key: str
    seg_path: str | None = None
    seg_kind: str | None = None  # "trimap" (flowers17) | "segmim" (flowers102) | "bsds" (bsds500)


def _hash_unit(text):
    """A stable number in [0,1) from a string."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:15], 16) / float(16 ** 15)


def check_split(split):
    """UserError unless split is one of SPLITS (callers pass literals, not only eval.split)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (use {', '.join(SPLITS)})")


def _root(cfg_data):
    root = os.path.expanduser(cfg_data.root)
    if not root:
        raise UserError(f"data.root must be set for data.name={cfg_data.name}")
    if not os.path.isdir(root):
        raise UserError(f"data.root {root} does not exist or is not a folder")
    return os.path.abspath(root)


def _numbered(folder, pattern):
    """{number: filename} for files in `folder` matching `pattern` (one group: the number)."""
    if not os.path.isdir(folder):
        return {}
    out = {}
    for f in os.listdir(folder):
        m = re.fullmatch(pattern, f)
        if m:
            out[int(m.group(1))] = f
    return out


def _load_mat_ids(path, keys):
    try:
        mat = loadmat(path)
        return {k: [int(v) for v in np.asarray(mat[k]).ravel()] for k in keys}
    except Exception as e:  # scipy raises ValueError/KeyError/OSError for bad files
        raise UserError(f"cannot read split file {path}: {' '.join(str(e).split()) or type(e).__name__}") from None


def _flowers17(root, split):
    jpg = os.path.join(root, "jpg")
    if not os.path.isdir(jpg) and os.path.isfile(os.path.join(root, "image_0001.jpg")):
        jpg = root
    files = _numbered(jpg, r"image_(\d{4})\.jpg")
    if not files:
        raise UserError(f"data.root {root} has no Flowers17 images (expected jpg/image_0001.jpg ...; "
                        "download with: python datasets/flowers17.py --root DIR)")
    mat = os.path.join(root, "datasplits.mat")
    if os.path.isfile(mat):
        key = {"train": "trn1", "val": "val1", "test": "tst1"}[split]
        ids = sorted(_load_mat_ids(mat, [key])[key])
    else:
        ids = []
        for c in sorted({(n - 1) // 80 for n in files}):
            members = sorted(range(80 * c + 1, 80 * c + 81), key=lambda n: hashlib.sha1(
                f"flowers17:{n}".encode()).hexdigest())
            lo, hi = {"train": (0, 40), "val": (40, 60), "test": (60, 80)}[split]
            ids += [n for n in members[lo:hi] if n in files]
        ids.sort()
    trimaps = os.path.join(root, "trimaps")
    out = []
    for n in ids:
        name = files.get(n, f"image_{n:04d}.jpg")  # an id the split lists but the folder lacks:
        seg = os.path.join(trimaps, f"image_{n:04d}.png")  # the cache reports it as missing
        out.append(Record(os.path.join(jpg, name), f"jpg/{name}",
                          seg if os.path.isfile(seg) else None, "trimap" if os.path.isfile(seg) else None))
    return out


@functools.lru_cache(maxsize=1)
def flowers102_duplicates():
    """The Flowers102 ids that near-duplicate a Flowers17 image (dedup.FLOWERS102_DUPLICATES)."""
    return frozenset(read_duplicates())


def _flowers102(root, split, scheme):
    jpg = os.path.join(root, "jpg")
    files = _numbered(jpg, r"image_(\d{5})\.jpg")
    if not files:
        raise UserError(f"data.root {root} has no Flowers102 images (expected jpg/image_00001.jpg ...; "
                        "download with: python datasets/flowers102.py --root DIR)")
    mat = os.path.join(root, "setid.mat")
    if not os.path.isfile(mat):
        raise UserError(f"data.root {root} has no setid.mat (the official Flowers102 split; "
                        "download with: python datasets/flowers102.py --root DIR)")
    official = _load_mat_ids(mat, ["trnid", "valid", "tstid"])
    if scheme == "official":
        ids = official[{"train": "trnid", "val": "valid", "test": "tstid"}[split]]
    else:  # train+test
        ids = official["trnid"] + official["tstid"] if split == "train" else official["valid"]
    if split == "train":
        ids = [n for n in ids if n not in flowers102_duplicates()]
    segdir = os.path.join(root, "segmim")
    out = []
    for n in sorted(ids):
        name = f"image_{n:05d}.jpg"
        seg = os.path.join(segdir, f"segmim_{n:05d}.jpg")
        has = os.path.isfile(seg)
        out.append(Record(os.path.join(jpg, name), f"jpg/{name}", seg if has else None,
                          "segmim" if has else None))
    return out


def _bsds500(root, split):
    folder = os.path.join(root, "images", split)
    if not os.path.isdir(folder):
        have = sorted(d for d in SPLITS if os.path.isdir(os.path.join(root, "images", d)))
        raise UserError(f"data.root {root} has no BSDS500 {split} images (expected "
                        f"images/{split}/*.jpg and groundTruth/{split}/*.mat; "
                        f"this copy has: {', '.join(have) or 'no images/ folder'})")
    out = []
    for f in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(f)
        if f.startswith(".") or ext.lower() != ".jpg":
            continue
        mat = os.path.join(root, "groundTruth", split, f"{stem}.mat")
        has = os.path.isfile(mat)
        out.append(Record(os.path.join(folder, f), f"images/{split}/{f}", mat if has else None,
                          "bsds" if has else None))
    return out


def _images_under(root):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                path = os.path.join(dirpath, f)
                found.append(Record(path, os.path.relpath(path, root).replace(os.sep, "/")))
    return found


def _split_folders(root, split, val_fraction):
    def records(sub):
        folder = os.path.join(root, sub)
        if not os.path.isdir(folder):
            raise UserError(f"data.name=split_folders: {root} has no {sub}/ folder")
        return [Record(r.path, f"{sub}/{r.key}") for r in _images_under(folder)]

    has_val = os.path.isdir(os.path.join(root, "val"))
    if split == "test" or (split == "val" and has_val):
        return records(split)
    train = records("train")
    if has_val:
        return train
    return [r for r in train if (_hash_unit(r.key) < val_fraction) == (split == "val")]


def _folder(root, split, val_fraction, test_fraction):
    found = _images_under(root)
    if not found:
        raise UserError(f"data.root {root} holds no images "
                        f"({'/'.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)})")
    if len(found) < SMALL_FOLDER:
        warnings.warn(f"data.root {root} has only {len(found)} images: using all of them for "
                      "train, val and test", stacklevel=3)
        return found
    lo, hi = {"test": (0.0, test_fraction), "val": (test_fraction, test_fraction + val_fraction),
              "train": (test_fraction + val_fraction, 1.0)}[split]
    return [r for r in found if lo <= _hash_unit(r.key) < hi]


def _samples():
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    out = [Record(os.path.join(folder, f), f"skimage/{f}") for f in SAMPLE_FILES]
    missing = [r.key for r in out if not os.path.isfile(r.path)]
    if missing:
        raise UserError(f"data.name=samples: scikit-image's bundled photos are missing "
                        f"({', '.join(missing)}); reinstall scikit-image")
    return out


def list_split(cfg_data, split):
    """The records of one split of the dataset cfg_data describes (see the module docstring).
    Missing root / no images / an empty split -> UserError."""
    check_split(split)
    name = cfg_data.name
    if name == "samples":
        return _samples()
    if name == "flowers17":
        records = _flowers17(_root(cfg_data), split)
    elif name == "flowers102":
        records = _flowers102(_root(cfg_data), split, cfg_data.flowers102_split)
    elif name == "bsds500":
        records = _bsds500(_root(cfg_data), split)
    elif name == "split_folders":
        records = _split_folders(_root(cfg_data), split, cfg_data.val_fraction)
    elif name == "folder":
        records = _folder(_root(cfg_data), split, cfg_data.val_fraction, cfg_data.test_fraction)
    else:
        raise UserError(f"data.name: unknown dataset {name!r} ({', '.join(CHOICES['data.name'])})")
    if not records:
        raise UserError(f"the {split} split of {name} at {cfg_data.root} is empty")
    return records

