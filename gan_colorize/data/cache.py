"""The decode-once uint8 image cache of one split, and the decoding that fills it.

Layout, under <data.cache_dir>/<name>-<split>-<size>-<key16>/, where key16 is a sha1 of (cache
version, name, absolute root, split, working size, min_ab_range, and every listed file's
relative path, byte size and mtime), so a changed dataset gets a fresh cache:
    images.u8   every kept image, uint8 RGB (h,w,3) C-order, back to back (np.memmap)
    segs.u8     segmentations, for the images that have one: a foreground, uint8 {0,1} (h,w)
                (Flowers trimaps and segmim), or label maps, uint8 (h,w,A), one channel per
                annotator, segments 1..K, 0 = none (BSDS500 groundTruth .mat)
    index.json  per image: key, path, offset, shape [h,w], seg_offset (or null), seg_channels
                (0: a foreground; A: A label maps), ab_range; plus the skipped files (with
                reasons), the low-colour files, counts, build time
Each image is resized (cv2.INTER_AREA down, INTER_CUBIC up) so its shorter side is
round(1.15 * size), aspect kept. Unreadable files are skipped and images whose ab range is below
data.min_ab_range (gray scans) left out, both with a warning. The folder is built in a temporary
sibling and renamed into place, so a crash never leaves half a cache; later runs open it and
decode nothing.
"""
import concurrent.futures as cf
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import tempfile
import time
import warnings

import cv2
import numpy as np
from scipy.io import loadmat
from skimage.color import rgb2lab
from tqdm import tqdm

from ..core.config import DataConfig
from ..core.errors import UserError
from ..core.imageio import BadImageError, read_rgb, resize_short
from .splits import check_split, list_split

log = logging.getLogger(__name__)

CACHE_VERSION = 1
WORK_SCALE = 1.15           # cached shorter side = round(WORK_SCALE * size): room for crops
COLOUR_PROBE = 64           # shorter side of the copy the ab range is measured on
DEFAULT_CACHE_DIR = DataConfig().cache_dir  # where an empty data.cache_dir puts the cache


# ---------------------------------------------------------------------------------------------
# decoding

def ab_range(rgb):
    """How colourful an image is: the larger of the a and b channels' 1st..99th percentile spans
    (Lab units), measured on a copy with shorter side COLOUR_PROBE. Gray scans give ~0."""
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


def read_bsds_labels(path):
    """A BSDS500 groundTruth .mat -> uint8 (h, w, A): the Segmentation label map of each of its
    A annotators (segments 1..K, as published; BSDS500 has K <= 173). A map with more than 255
    segments keeps its 255 largest, the others become 0 (never chosen for a mask). Anything
    unreadable -> BadImageError naming the file."""
    try:
        gt = loadmat(path)["groundTruth"]
        maps = [np.asarray(gt.flat[k]["Segmentation"][0, 0]) for k in range(gt.size)]
        if not maps or any(m.ndim != 2 or m.shape != maps[0].shape or m.size == 0 for m in maps):
            raise ValueError(f"expected one 2-D Segmentation per annotator, got shapes "
                             f"{[m.shape for m in maps]}")
    except Exception as e:  # scipy and the indexing raise a zoo of types for bad files
        raise BadImageError(f"cannot read segmentation {path}: "
                            f"{' '.join(str(e).split()) or type(e).__name__}") from None
    out = np.zeros(maps[0].shape + (len(maps),), np.uint8)
    for k, m in enumerate(maps):
        m = m.astype(np.int64)
        if m.max() > 255:
            counts = np.bincount(np.clip(m, 0, None).ravel())
            counts[0] = 0
            keep = np.argsort(-counts, kind="stable")[:255]
            relabel = np.zeros(len(counts), np.int64)
            relabel[keep] = np.arange(1, 256)
            m = relabel[np.clip(m, 0, None)]
        out[..., k] = np.clip(m, 0, 255)
    return out


def read_segmentation(record, shape):
    """The record's segmentation at the image's full size (h, w) -> uint8 (h, w) foreground or
    (h, w, A) label maps; BadImageError when it cannot be read or does not fit the image."""
    if record.seg_kind == "bsds":
        seg = read_bsds_labels(record.seg_path)
        if seg.shape[:2] != shape:
            raise BadImageError(f"segmentation {record.seg_path} is {seg.shape[1]}x{seg.shape[0]}, "
                                f"the image {shape[1]}x{shape[0]}")
        return seg
    return _seg_foreground(read_rgb(record.seg_path), record.seg_kind)


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
        try:
            full = read_segmentation(record, rgb.shape[:2])
            seg = cv2.resize(full, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
            seg = seg.reshape(small.shape[:2] + full.shape[2:])
        except BadImageError:
            seg = None  # a broken segmentation only loses the segmentation, not the image
    return ("ok", small, seg, ab)


# ---------------------------------------------------------------------------------------------
# the cache

def _cache_key(cfg_data, split, short, records):
    h = hashlib.sha1()
    root = os.path.abspath(os.path.expanduser(cfg_data.root)) if cfg_data.root else ""
    head = [CACHE_VERSION, cfg_data.name, root, split, short, float(cfg_data.min_ab_range)]
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
        check_split(split)
        self.name, self.split = cfg_data.name, split
        self.size = int(size or cfg_data.size)
        self.short_side = int(round(WORK_SCALE * self.size))
        self.min_ab_range = float(cfg_data.min_ab_range)
        records = list(records) if records is not None else list_split(cfg_data, split)
        cache_root = os.path.abspath(os.path.expanduser(cfg_data.cache_dir or DEFAULT_CACHE_DIR))
        key = _cache_key(cfg_data, split, self.short_side, records)
        self.dir = os.path.join(cache_root, f"{self.name}-{split}-{self.size}-{key}")
        self.built_now, self.build_seconds = False, 0.0
        index_path = os.path.join(self.dir, "index.json")
        index = self._read_index(index_path)
        if index is None:
            workers = cfg_data.workers if workers is None else workers
            index = self._build(records, cache_root, progress, int(workers))
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
                             "seg_channels": 0, "ab_range": round(ab, 3)}
                    fi.write(rgb.tobytes())
                    offset += rgb.nbytes
                    if seg is not None:
                        entry["seg_offset"] = seg_offset
                        entry["seg_channels"] = int(seg.shape[2]) if seg.ndim == 3 else 0
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
        self._seg_channels = [e.get("seg_channels", 0) for e in imgs]
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
        """uint8 (h,w) {0,1} foreground, or uint8 (h,w,A) label maps of A annotators (BSDS500),
        or None when the image has no segmentation."""
        o = self._seg_offsets[i]
        if o is None:
            return None
        h, w = self.shapes[i]
        c = self._seg_channels[i]
        return self._map("segs")[o:o + h * w * max(c, 1)].reshape((h, w, c) if c else (h, w))

