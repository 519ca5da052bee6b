"""Datasets: split lists, a decode-once uint8 image cache, the training/eval Dataset, loaders.

Sources (`data.name`) and their split rules:

- `flowers17`  root holds jpg/image_0001.jpg ... (or root is that jpg folder). With
  root/datasplits.mat: the official split 1 (trn1 / val1 / tst1, 1-based ids; 40/20/20 per class).
  Without it, our own fixed 40/20/20 per class: image N is in class (N-1)//80; within a class the
  80 ids are ordered by sha1("flowers17:<N>") and the first 40 are train, the next 20 val, the
  last 20 test. Hash order, not numpy's RNG, so the split never changes with library versions,
  and an image's split does not depend on which other files are present. Segmentations from
  root/trimaps/image_NNNN.png where present (colour-coded trimaps; see _seg_foreground).
- `flowers102` root holds jpg/image_00001.jpg ... and setid.mat (required: trnid / valid /
  tstid). Segmentations from root/segmim/segmim_NNNNN.jpg where present.
- `folder`     every image under root (jpg/jpeg/png/bmp/tif/tiff/webp, any case, hidden files
  and folders skipped). u = int(sha1(relative posix path)[:15], 16) / 16**15 in [0,1):
  test if u < test_fraction, val if u < test_fraction + val_fraction, else train
  (data.test_fraction / data.val_fraction when the config has them, else 0.1 / 0.1).
  A folder with fewer than SMALL_FOLDER images uses all of them for every split (with a warning).
- `samples`    the 5 colour photos bundled inside scikit-image (astronaut, chelsea, coffee,
  rocket, the left stereo_motorcycle view), read straight from its data folder: no network.
  Every split is all 5 photos: it is a smoke-test / demo dataset, not a benchmark.

ImageCache layout, under <data.cache_dir>/<name>-<split>-<size>-<key16>/, where key16 is a
sha1 of (cache version, name, absolute root, split, working size, min_ab_range, and every listed
file's relative path, byte size and mtime), so a changed dataset gets a fresh cache:
    images.u8   every kept image, uint8 RGB (h,w,3) C-order, back to back (np.memmap)
    segs.u8     segmentation foregrounds, uint8 {0,1} (h,w), for the images that have one
    index.json  per image: key, path, offset, shape [h,w], seg_offset (or null), ab_range;
                plus the skipped files (with reasons), the low-colour files, counts, build time
Each image is resized (cv2.INTER_AREA down, INTER_CUBIC up) so its shorter side is
round(1.15 * size), aspect kept. The folder is built in a temporary sibling and renamed into
place, so a crash never leaves half a cache; later runs open it and decode nothing.

Randomness is keyed, never drawn from worker state: a training item is a pure function of
(train seed, epoch, position in the epoch's order, image index), an eval item of (eval seed,
index), so batches do not depend on batch size, worker count or resumption.
"""
import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError
from .imageio import IMAGE_EXTENSIONS, BadImageError, read_rgb

log = logging.getLogger(__name__)

CACHE_VERSION = 1
SPLITS = ("train", "val", "test")
WORK_SCALE = 1.15           # cached shorter side = round(WORK_SCALE * size): room for crops
SMALL_FOLDER = 10           # folders with fewer images use all of them for every split
COLOUR_PROBE = 64           # shorter side of the copy the ab range is measured on
SAMPLE_FILES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png")
DEFAULT_CACHE_DIR = "~/.cache/gan_colorize"


@dataclass(frozen=True)
class Record:
    """One source image: absolute path, a stable key (relative path), optional segmentation."""
    path: str
    key: str
    seg_path: str | None = None
    seg_kind: str | None = None  # "trimap" (flowers17) | "segmim" (flowers102)


# ---------------------------------------------------------------------------------------------
# split lists

def _hash_unit(text):
    """A stable number in [0,1) from a string."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:15], 16) / float(16 ** 15)


def _check_split(split):
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (use {', '.join(SPLITS)})")


def _root(cfg_data):
    root = os.path.expanduser(str(getattr(cfg_data, "root", "") or ""))
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
    from scipy.io import loadmat
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


def _flowers102(root, split):
    jpg = os.path.join(root, "jpg")
    files = _numbered(jpg, r"image_(\d{5})\.jpg")
    if not files:
        raise UserError(f"data.root {root} has no Flowers102 images (expected jpg/image_00001.jpg ...; "
                        "download with: python datasets/flowers102.py --root DIR)")
    mat = os.path.join(root, "setid.mat")
    if not os.path.isfile(mat):
        raise UserError(f"data.root {root} has no setid.mat (the official Flowers102 split; "
                        "download with: python datasets/flowers102.py --root DIR)")
    key = {"train": "trnid", "val": "valid", "test": "tstid"}[split]
    ids = sorted(_load_mat_ids(mat, [key])[key])
    segdir = os.path.join(root, "segmim")
    out = []
    for n in ids:
        name = f"image_{n:05d}.jpg"
        seg = os.path.join(segdir, f"segmim_{n:05d}.jpg")
        has = os.path.isfile(seg)
        out.append(Record(os.path.join(jpg, name), f"jpg/{name}", seg if has else None,
                          "segmim" if has else None))
    return out


def _folder(root, split, val_fraction, test_fraction):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                path = os.path.join(dirpath, f)
                found.append(Record(path, os.path.relpath(path, root).replace(os.sep, "/")))
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
    import skimage
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    out = [Record(os.path.join(folder, f), f"skimage/{f}") for f in SAMPLE_FILES]
    missing = [r.key for r in out if not os.path.isfile(r.path)]
    if missing:
        raise UserError(f"data.name=samples: scikit-image's bundled photos are missing "
                        f"({', '.join(missing)}); reinstall scikit-image")
    return out


def list_split(cfg_data, split):
    """The records of one split of the dataset cfg_data describes (see the module docstring).
    Missing root / no images / unknown name -> UserError."""
    _check_split(split)
    name = cfg_data.name
    if name == "samples":
        return _samples()
    if name == "flowers17":
        records = _flowers17(_root(cfg_data), split)
    elif name == "flowers102":
        records = _flowers102(_root(cfg_data), split)
    elif name == "folder":
        vf = float(getattr(cfg_data, "val_fraction", 0.1))
        tf = float(getattr(cfg_data, "test_fraction", 0.1))
        if not (0 <= vf and 0 <= tf and vf + tf < 1):
            raise UserError(f"data.val_fraction + data.test_fraction must be in [0, 1), got {vf} + {tf}")
        records = _folder(_root(cfg_data), split, vf, tf)
    else:
        raise UserError(f"data.name: unknown dataset {name!r} (samples, flowers17, flowers102, folder)")
    if not records:
        raise UserError(f"the {split} split of {name} at {cfg_data.root} is empty")
    return records


# ---------------------------------------------------------------------------------------------
# decoding

def resize_short(img, short, interp=None):
    """Resize (h,w[,c]) uint8 so that min(h,w) == short, keeping the aspect ratio.
    Default interpolation: INTER_AREA when shrinking (no aliasing), INTER_CUBIC when enlarging."""
    import cv2
    h, w = img.shape[:2]
    if min(h, w) == short:
        return img
    s = short / min(h, w)
    nh, nw = (short, max(1, round(w * s))) if h <= w else (max(1, round(h * s)), short)
    if interp is None:
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return cv2.resize(img, (nw, nh), interpolation=interp)


def ab_range(rgb):
    """How colourful an image is: the larger of the a and b channels' 1st..99th percentile spans
    (Lab units), measured on a copy with shorter side COLOUR_PROBE. Gray scans give ~0."""
    from skimage.color import rgb2lab
    small = resize_short(rgb, min(COLOUR_PROBE, min(rgb.shape[:2])))
    lab = rgb2lab(small)
    spans = [np.percentile(lab[..., c], 99) - np.percentile(lab[..., c], 1) for c in (1, 2)]
    return float(max(spans))


def _seg_foreground(seg_rgb, kind):
    """Segmentation image -> uint8 {0,1} foreground.

    segmim (Flowers102): the background is painted pure blue; anything else is the flower.
    trimap (Flowers17): gray-level trimaps -> white (> 192) is foreground; colour-coded ones ->
    black is background, gray is the undecided border, coloured labels are foreground.
    """
    x = seg_rgb.astype(np.int16)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    if kind == "segmim":
        fg = ~((b >= 180) & (r <= 70) & (g <= 70))
    else:
        chroma = x.max(axis=2) - x.min(axis=2)
        fg = (chroma > 32) if (chroma > 32).any() else (r > 192)
    return fg.astype(np.uint8)


def _decode(record, short, min_ab):
    """-> ("ok", rgb, seg|None, ab) | ("bad", reason) | ("low", ab). Runs in pool workers."""
    try:
        rgb = read_rgb(record.path)
    except BadImageError as e:
        return ("bad", str(e))
    ab = ab_range(rgb)
    if ab < min_ab:
        return ("low", ab)
    small = np.ascontiguousarray(resize_short(rgb, short))
    seg = None
    if record.seg_path:
        import cv2
        try:
            fg = _seg_foreground(read_rgb(record.seg_path), record.seg_kind)
            seg = cv2.resize(fg, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        except BadImageError:
            seg = None  # a broken segmentation only loses the segmentation, not the image
    return ("ok", small, seg, ab)


# ---------------------------------------------------------------------------------------------
# the cache

def _cache_key(cfg_data, split, short, records):
    h = hashlib.sha1()
    root = str(getattr(cfg_data, "root", "") or "")
    head = [CACHE_VERSION, cfg_data.name, os.path.abspath(os.path.expanduser(root)) if root else "",
            split, short, float(getattr(cfg_data, "min_ab_range", 5.0))]
    h.update(json.dumps(head).encode())
    for r in records:
        parts = [r.key, r.path, r.seg_path]
        for p in (r.path, r.seg_path):
            try:
                st = os.stat(p) if p else None
                parts += [st.st_size, st.st_mtime_ns] if st else [None, None]
            except OSError:
                parts += [-1, -1]
        h.update(json.dumps(parts).encode())
    return h.hexdigest()[:16]


def _summary(paths, limit=8):
    names = [os.path.basename(p) for p in paths]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class ImageCache:
    """Decode-once uint8 cache of one split at working resolution (see the module docstring).

    ImageCache(cfg_data, split, size=None, records=None, progress=True, workers=None)
      size: crop size (default cfg_data.size); the cached shorter side is round(1.15 * size).
      records: override list_split (tests); workers: decode processes (default cfg_data.workers).
    Attributes: dir, built_now (bool), build_seconds, short_side, keys, paths, shapes,
    ab_ranges, skipped [(path, reason)], low_colour [(path, ab_range)], n_records.
    image(i) -> uint8 (h,w,3) read-only; segmentation(i) -> uint8 (h,w) {0,1} or None.
    """

    def __init__(self, cfg_data, split, size=None, records=None, progress=True, workers=None):
        _check_split(split)
        self.name, self.split = cfg_data.name, split
        self.size = int(size or cfg_data.size)
        self.short_side = int(round(WORK_SCALE * self.size))
        self.min_ab_range = float(getattr(cfg_data, "min_ab_range", 5.0))
        records = list(records) if records is not None else list_split(cfg_data, split)
        cache_root = os.path.abspath(os.path.expanduser(
            str(getattr(cfg_data, "cache_dir", "") or DEFAULT_CACHE_DIR)))
        key = _cache_key(cfg_data, split, self.short_side, records)
        self.dir = os.path.join(cache_root, f"{self.name}-{split}-{self.size}-{key}")
        self.built_now, self.build_seconds = False, 0.0
        index_path = os.path.join(self.dir, "index.json")
        index = self._read_index(index_path)
        if index is None:
            if workers is None:
                workers = int(getattr(cfg_data, "workers", 0) or 0)
            index = self._build(records, cache_root, progress, workers)
        self._load(index)

    # -- build ---------------------------------------------------------------------------------
    @staticmethod
    def _read_index(path):
        """The index of a complete cache folder, or None (absent, old version, damaged)."""
        folder = os.path.dirname(path)
        try:
            with open(path) as f:
                index = json.load(f)
            complete = (index.get("version") == CACHE_VERSION
                        and os.path.getsize(os.path.join(folder, "images.u8")) == index["images_bytes"]
                        and os.path.getsize(os.path.join(folder, "segs.u8")) == index["segs_bytes"])
            return index if complete else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _build(self, records, cache_root, progress, workers):
        from tqdm import tqdm
        os.makedirs(cache_root, exist_ok=True)
        for f in os.listdir(cache_root):  # left by builds that were killed (SIGKILL, power loss)
            p = os.path.join(cache_root, f)
            try:
                if f.startswith(f".{os.path.basename(self.dir)}.tmp-") and time.time() - os.path.getmtime(p) > 86400:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass
        t0 = time.perf_counter()
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(self.dir)}.tmp-", dir=cache_root)
        try:
            images, skipped, low = [], [], []
            offset = seg_offset = 0
            with open(os.path.join(tmp, "images.u8"), "wb") as fi, \
                    open(os.path.join(tmp, "segs.u8"), "wb") as fs:
                bar = tqdm(total=len(records), desc=f"caching {self.name}/{self.split} @{self.short_side}px",
                           unit="img", disable=None if progress else True, leave=False)
                for rec, res in zip(records, self._decode_all(records, workers)):
                    bar.update(1)
                    if res[0] == "bad":
                        skipped.append({"path": rec.path, "reason": res[1]})
                        continue
                    if res[0] == "low":
                        low.append({"path": rec.path, "ab_range": round(res[1], 3)})
                        continue
                    _, rgb, seg, ab = res
                    entry = {"key": rec.key, "path": rec.path, "offset": offset,
                             "shape": [int(rgb.shape[0]), int(rgb.shape[1])], "seg_offset": None,
                             "ab_range": round(ab, 3)}
                    fi.write(rgb.tobytes())
                    offset += rgb.nbytes
                    if seg is not None:
                        entry["seg_offset"] = seg_offset
                        fs.write(np.ascontiguousarray(seg).tobytes())
                        seg_offset += seg.nbytes
                    images.append(entry)
                bar.close()
                for f in (fi, fs):  # on disk before the index that points into them
                    f.flush()
                    os.fsync(f.fileno())
            self.build_seconds = time.perf_counter() - t0
            index = {"version": CACHE_VERSION, "name": self.name, "split": self.split,
                     "size": self.size, "short_side": self.short_side,
                     "min_ab_range": self.min_ab_range, "n_records": len(records),
                     "build_seconds": round(self.build_seconds, 3), "images_bytes": offset,
                     "segs_bytes": seg_offset, "images": images, "skipped": skipped,
                     "low_colour": low}
            self._report(index)  # before saving: a dataset with nothing usable is not cached
            with open(os.path.join(tmp, "index.json"), "w") as f:
                json.dump(index, f)
                f.flush()
                os.fsync(f.fileno())
            if os.path.isdir(self.dir) and self._read_index(os.path.join(self.dir, "index.json")) is None:
                shutil.rmtree(self.dir, ignore_errors=True)  # a damaged cache (e.g. edited by hand)
            try:
                os.replace(tmp, self.dir)
            except OSError:  # another process finished the same cache first: use theirs
                theirs = self._read_index(os.path.join(self.dir, "index.json"))
                if theirs is None:
                    raise
                index = theirs
            self.built_now = True
            log.info("cached %d images of %s/%s in %.1f s -> %s", len(images), self.name,
                     self.split, self.build_seconds, self.dir)
            return index
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _decode_all(self, records, workers):
        """Decoded results in record order; a process pool when workers > 1 and it pays off."""
        args = (self.short_side, self.min_ab_range)
        if workers > 1 and len(records) >= 64:
            import concurrent.futures as cf
            import multiprocessing as mp
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            with cf.ProcessPoolExecutor(min(workers, os.cpu_count() or 1), mp_context=ctx) as ex:
                yield from ex.map(_decode, records, *[[a] * len(records) for a in args], chunksize=8)
        else:
            for r in records:
                yield _decode(r, *args)

    def _report(self, index):
        n_bad, n_low, n_ok = len(index["skipped"]), len(index["low_colour"]), len(index["images"])
        where = f"{self.name}/{self.split}"
        if n_ok == 0:  # raised before the warnings: no index.json is written to hold the reasons
            bad = index["skipped"][0] if n_bad else None
            example = f"; e.g. {bad['reason']}" if bad else ""
            files = _summary([s["path"] for s in index["skipped"] + index["low_colour"]])
            raise UserError(f"{where}: no usable image among {index['n_records']} files "
                            f"({n_bad} unreadable, {n_low} without colour: {files}){example}")
        if n_bad:
            warnings.warn(f"{where}: skipped {n_bad} of {index['n_records']} image files that could "
                          f"not be read: {_summary([s['path'] for s in index['skipped']])} "
                          f"(reasons in {os.path.join(self.dir, 'index.json')})", stacklevel=4)
        if n_low:
            warnings.warn(f"{where}: left out {n_low} of {index['n_records']} images with almost "
                          f"no colour (ab range < data.min_ab_range={self.min_ab_range:g}): "
                          f"{_summary([s['path'] for s in index['low_colour']])}", stacklevel=4)

    # -- use -----------------------------------------------------------------------------------
    def _load(self, index):
        if not self.built_now:
            self._report(index)
        self.index = index
        imgs = index["images"]
        self.n_records = index["n_records"]
        self.keys = [e["key"] for e in imgs]
        self.paths = [e["path"] for e in imgs]
        self.shapes = [tuple(e["shape"]) for e in imgs]
        self.ab_ranges = [e["ab_range"] for e in imgs]
        self._offsets = [e["offset"] for e in imgs]
        self._seg_offsets = [e["seg_offset"] for e in imgs]
        self.has_seg = np.array([o is not None for o in self._seg_offsets], dtype=bool)
        self.skipped = [(s["path"], s["reason"]) for s in index["skipped"]]
        self.low_colour = [(s["path"], s["ab_range"]) for s in index["low_colour"]]
        if not self.built_now:
            self.build_seconds = 0.0
        self._mm = self._seg_mm = None

    def __len__(self):
        return len(self.keys)

    def __getstate__(self):  # memmaps are reopened in each worker, not pickled as arrays
        state = self.__dict__.copy()
        state["_mm"] = state["_seg_mm"] = None
        return state

    def _map(self, which):
        attr = "_mm" if which == "images" else "_seg_mm"
        if getattr(self, attr) is None:
            setattr(self, attr, np.memmap(os.path.join(self.dir, f"{which}.u8"), dtype=np.uint8, mode="r"))
        return getattr(self, attr)

    def image(self, i):
        """uint8 (h,w,3), a read-only view into the cache file."""
        h, w = self.shapes[i]
        o = self._offsets[i]
        return self._map("images")[o:o + h * w * 3].reshape(h, w, 3)

    def segmentation(self, i):
        """uint8 (h,w) {0,1} foreground, or None when the image has no segmentation."""
        o = self._seg_offsets[i]
        if o is None:
            return None
        h, w = self.shapes[i]
        return self._map("segs")[o:o + h * w].reshape(h, w)


# ---------------------------------------------------------------------------------------------
# the dataset

def _centre_crop(img, size):
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y:y + size, x:x + size]


class TrainDataset(torch.utils.data.Dataset):
    """Crops + masks from an ImageCache.

    TrainDataset(cache, mask_sampler, size, train, pairing="random", seed=0)
    Item: dict(rgb uint8 (3,size,size), mask float32 (1,size,size) {0,1}, family int64 (index
    into mask_sampler.families), index int64 (the item index)).
    - train=True: albumentations RandomResizedCrop(scale 0.5..1, ratio 3/4..4/3) + a horizontal
      flip (p=0.5) on the uint8 image (and segmentation), then a mask from the sampler. The key
      may be an int or the (epoch, position, index) tuple that ResumableSampler(tag_epoch=True)
      yields; all randomness comes from default_rng([seed, epoch, position, index]).
    - train=False: shorter side resized to size, centre crop; mask from mask_rng(seed, index).
    - pairing="all" (fixed mask families only): len = n_images * n_masks, item i is image
      i // n_masks with mask i % n_masks of mask_sampler.fixed_masks(size, size).
    When the sampler needs segmentations, images without one are left out.
    """

    def __init__(self, cache, mask_sampler, size, train, pairing="random", seed=0):
        if pairing not in ("random", "all"):
            raise UserError(f"masks.pairing: {pairing!r} is not one of random, all")
        self.cache, self.sampler, self.size, self.train = cache, mask_sampler, int(size), bool(train)
        self.pairing, self.seed = pairing, int(seed)
        self.ids = np.arange(len(cache))
        if mask_sampler.needs_segmentation:
            self.ids = self.ids[cache.has_seg]
            if len(self.ids) == 0:
                raise UserError(f"mask family 'segmentation' needs segmentations, and "
                                f"{cache.name}/{cache.split} has none")
        self.fixed = mask_sampler.fixed_masks(self.size, self.size) if pairing == "all" else None
        self.n_masks = len(self.fixed) if self.fixed is not None else 1
        if self.n_masks == 0:
            raise UserError(f"mask spec {mask_sampler.spec!r} gives no mask for pairing=all")
        self.family_index = {f: i for i, f in enumerate(mask_sampler.families)}
        self._crop = None

    def __len__(self):
        return len(self.ids) * self.n_masks

    def _crop_transform(self):
        if self._crop is None:
            import inspect  # (the package __init__ has set NO_ALBUMENTATIONS_UPDATE already)

            import albumentations as A
            import cv2
            kw = dict(size=(self.size, self.size), scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), p=1.0)
            params = inspect.signature(A.RandomResizedCrop.__init__).parameters
            if "mask_interpolation" in params:  # plain INTER_NEAREST is off by up to half a pixel
                kw["mask_interpolation"] = cv2.INTER_NEAREST_EXACT
            if "area_for_downscale" in params:
                kw["area_for_downscale"] = "image"  # INTER_AREA when the crop shrinks
            self._crop = A.Compose([A.RandomResizedCrop(**kw)])
        return self._crop

    def _train_view(self, img, seg, rng):
        crop = self._crop_transform()
        seed = int(rng.integers(2 ** 31))
        if hasattr(crop, "set_random_seed"):
            crop.set_random_seed(seed)
        else:  # albumentations < 2 draws from the global generators
            import random
            random.seed(seed)
            np.random.seed(seed)
        out = crop(image=img, mask=seg) if seg is not None else crop(image=img)
        img, seg = out["image"], out.get("mask") if seg is not None else None
        if rng.random() < 0.5:
            img = img[:, ::-1]
            seg = seg[:, ::-1] if seg is not None else None
        return img, seg

    def _eval_view(self, img, seg):
        import cv2
        img = _centre_crop(resize_short(img, self.size), self.size)
        if seg is not None:
            seg = _centre_crop(resize_short(seg, self.size, interp=cv2.INTER_NEAREST_EXACT), self.size)
        return img, seg

    def __getitem__(self, key):
        from .masks import mask_rng
        if isinstance(key, (tuple, list)):
            epoch, pos, i = (int(k) for k in key)
        else:
            epoch, pos, i = 0, int(key), int(key)
        if not 0 <= i < len(self):
            raise IndexError(i)
        img_id = int(self.ids[i // self.n_masks])
        img = self.cache.image(img_id)
        seg = self.cache.segmentation(img_id)
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, pos, i])
            img, seg = self._train_view(img, seg, rng)
        else:
            rng = mask_rng(self.seed, i)
            img, seg = self._eval_view(img, seg)
        img = np.ascontiguousarray(img)
        seg = np.ascontiguousarray(seg) if seg is not None else None
        if self.fixed is not None:
            mask, family = self.fixed[i % self.n_masks]
        else:
            mask, family = self.sampler.sample(self.size, self.size, rng, image=img, segmentation=seg)
        return {
            "rgb": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None]),
            "family": torch.tensor(self.family_index[family], dtype=torch.int64),
            "index": torch.tensor(i, dtype=torch.int64),
        }


# ---------------------------------------------------------------------------------------------
# sampling order and loaders

class ResumableSampler(torch.utils.data.Sampler):
    """Epoch order as a pure function of (seed, epoch), sharded over ranks, resumable mid-epoch.

    ResumableSampler(n, shuffle, seed=0, rank=0, world_size=1, even=True, min_len=0, tag_epoch=False)
    - The epoch's global order: shuffle -> concatenated permutations from
      default_rng([seed, epoch, r]), r = 0, 1, ...; else 0..n-1; repeated until it holds at least
      max(n, min_len) items (so a tiny dataset still fills a batch).
    - Rank r takes positions r, r + world_size, ... of it. even=True pads the order by wrapping
      around so every rank gets the same count (training); even=False does not (evaluation:
      no sample twice, shards may differ by one).
    - set_epoch(e) picks the order; set_start(k) makes the NEXT iteration skip this rank's first
      k samples (k = batches already done in this epoch * per-rank batch size); it applies once.
    - tag_epoch=True yields (epoch, position, index) tuples that TrainDataset turns into its
      random keys; otherwise plain indices.
    len() is the number of samples the next iteration yields.
    """

    def __init__(self, n, shuffle, seed=0, rank=0, world_size=1, even=True, min_len=0, tag_epoch=False):
        if n <= 0:
            raise ValueError("ResumableSampler needs n >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.rank, self.world_size, self.even = int(rank), int(world_size), bool(even)
        self.min_len, self.tag_epoch = int(min_len), bool(tag_epoch)
        self.epoch, self._start = 0, 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def set_start(self, k):
        k = int(k)
        if not 0 <= k <= self._full_len():
            raise ValueError(f"start {k} is outside this rank's epoch of {self._full_len()} samples")
        self._start = k

    def _order(self):
        """(positions, indices) of this rank for the current epoch."""
        reps = max(1, math.ceil(self.min_len / self.n))
        if self.shuffle:
            order = np.concatenate([np.random.default_rng([self.seed, self.epoch, r]).permutation(self.n)
                                    for r in range(reps)])
        else:
            order = np.tile(np.arange(self.n), reps)
        pos = np.arange(len(order))
        if self.even and len(order) % self.world_size:  # wrap around to equal shares
            order = np.resize(order, math.ceil(len(order) / self.world_size) * self.world_size)
            pos = np.arange(len(order))
        return pos[self.rank::self.world_size], order[self.rank::self.world_size]

    def _full_len(self):
        reps = max(1, math.ceil(self.min_len / self.n))
        total = self.n * reps
        if self.even:
            return math.ceil(total / self.world_size)
        return len(range(self.rank, total, self.world_size))

    def __len__(self):
        return self._full_len() - self._start

    def __iter__(self):
        start, self._start = self._start, 0
        pos, idx = self._order()
        if self.tag_epoch:
            return iter([(self.epoch, int(p), int(i)) for p, i in zip(pos[start:], idx[start:])])
        return iter(int(i) for i in idx[start:])


def _worker_init(_):
    # Ctrl-C in a terminal (or `kill -TERM -- -PGID`) signals the whole process group. The main
    # process then finishes its step, saves and shuts the workers down itself; a worker killed
    # first would crash it mid-step instead. So workers leave the group. They still stop when the
    # main process asks (SIGTERM from the parent) or dies (DataLoader's watchdog).
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:
            pass


def _single_threaded_opencv():
    # OpenCV's own thread pool in every worker process only oversubscribes the cores. It must be
    # turned off here, in the parent, before the fork: a forked child that calls setNumThreads
    # while the parent's pool has run (e.g. an earlier loader with workers=0) waits forever on
    # pool threads that were not copied into it.
    try:
        import cv2
        cv2.setNumThreads(1)
    except Exception:
        pass


def resolve_mask_spec(spec):
    """A mask spec string, or a folder / file of mask images -> a MaskSampler spec."""
    p = os.path.expanduser(str(spec))
    return f"file={spec}" if os.path.isdir(p) or os.path.isfile(p) else spec


def build_loader(cfg, split, train, rank=0, world_size=1, *, size=None, mask_spec=None,
                 batch_size=None, max_samples=0, progress=None):
    """-> (DataLoader, ResumableSampler) for one split.

    train=True: masks.train, train.seed, train.batch_size, shuffled, drop_last, an epoch of at
    least one full batch per rank, items keyed by (epoch, position, index).
    train=False: mask_spec or masks.preview (a folder of mask files also works), eval.seed for the
    masks, eval.batch_size, fixed order, every item once (shards may be uneven across ranks),
    the first max_samples items when max_samples > 0.
    masks.pairing=all pairs every image with every fixed mask when the mask spec is fixed.
    size defaults to data.size. With torch.distributed initialised, rank 0 builds the cache while
    the other ranks wait at a barrier. Workers: data.workers (persistent when > 0).
    """
    from .masks import MaskSampler
    size = int(size or cfg.data.size)
    spec = cfg.masks.train if train else resolve_mask_spec(mask_spec or cfg.masks.preview)
    sampler_m = MaskSampler(spec)
    pairing = cfg.masks.pairing
    if pairing == "all" and not sampler_m.is_fixed:
        if train:
            raise UserError(f"masks.pairing: 'all' needs fixed mask families, got {spec!r}")
        pairing = "random"
    dist_on = (world_size > 1 and torch.distributed.is_available()
               and torch.distributed.is_initialized())
    if dist_on and rank != 0:
        torch.distributed.barrier()
    cache = ImageCache(cfg.data, split, size=size, progress=(rank == 0) if progress is None else progress)
    if dist_on and rank == 0:
        torch.distributed.barrier()
    seed = cfg.train.seed if train else cfg.eval.seed
    ds = TrainDataset(cache, sampler_m, size, train=train, pairing=pairing, seed=seed)
    bs = int(batch_size or (cfg.train.batch_size if train else cfg.eval.batch_size))
    n = len(ds) if train or not max_samples else min(len(ds), int(max_samples))
    order = ResumableSampler(n, shuffle=train, seed=cfg.train.seed, rank=rank, world_size=world_size,
                             even=train, min_len=bs * world_size if train else 0, tag_epoch=train)
    workers = int(cfg.data.workers)
    if workers > 0:
        _single_threaded_opencv()
    loader = torch.utils.data.DataLoader(
        ds, batch_size=bs, sampler=order, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(), drop_last=train, worker_init_fn=_worker_init)
    return loader, order
