"""Near-duplicate images: a crop-tolerant perceptual hash, and the Flowers102 images that repeat
Flowers17.

Flowers17 and Flowers102 come from the same authors, and hundreds of photos are in both, often
cropped or framed differently. A model trained on Flowers102 must not have seen the Flowers17
images it is scored on, so the Flowers102 images that duplicate a Flowers17 image are listed in
FLOWERS102_DUPLICATES (package data, written by the command below) and splits.py keeps them out
of Flowers102 training.

The hash (window_hashes): the image in gray, its shorter side reduced to WORK_SIDE px, and 49
windows of it: the whole image, and crops of 85% and 70% of each side at its start, centre and
end (7 spans per axis, all pairs). Each window is reduced to 64 x 64 (pixel area), its 2-D
DCT-II taken, and the 16 x 16 lowest frequencies less the DC term (255 numbers) give one bit
each: above their median or not. Resizing, JPEG recompression and small colour or contrast
changes move a few of the 255 bits; another photo differs in about half of them.

The distance of two images (distance, nearest) is the smallest Hamming distance between one's
whole-image hash and any window of the other, both ways, so that a photo and a crop of it
(down to about 70% of a side) are close. Images are near-duplicates at a distance of at most
DUPLICATE_BITS. How the threshold was chosen: the 7399 Flowers102 images of the 90 classes that
are not Flowers17 species cannot duplicate a Flowers17 photo, and none of them comes closer than
74 to any Flowers17 image; the 790 images of the 12 shared species have 562 at 72 or less (most
at 0-4, the rest crops and reframings, checked by eye on contact sheets). The list is a little
generous on purpose (a look-alike of the same species left out of training costs nothing). What
it misses: a crop that lines up with none of the windows to within about 3% of a side moves
most of the 255 bits (a 4% scale change alone moves ~15%), so such a duplicate can lie beyond 72
(of 32 images of shared species at 76-80, 2 were duplicates).

    python -m gan_colorize.dedup --flowers17 ROOT17 --flowers102 ROOT102 [--out FILE]
        [--threshold 72] [--workers 2]

hashes every image of both datasets (a few minutes on 2 cores), prints the distance histogram
and how many Flowers102 images are near-duplicates of a Flowers17 image and, with --out, writes
the list: one line `image_NNNNN.jpg image_MMMM.jpg DISTANCE` per such Flowers102 image with its
nearest Flowers17 image, '#' comments on top.
"""
import concurrent.futures as cf
import os
import re
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from ..core.atomic import write_atomic
from ..core.errors import UserError
from ..core.parser import DEDUP, cli_main, parse_tool
from ..core.imageio import resize_short

WORK_SIDE = 256              # the gray image's shorter side before windows are cut
HASH_SIDE = 64               # each window is reduced to HASH_SIDE x HASH_SIDE
HASH_FREQ = 16               # the HASH_FREQ^2 lowest DCT frequencies less DC: 255 bits
HASH_BITS = HASH_FREQ * HASH_FREQ - 1
CROPS = (0.85, 0.70)         # window sides, as fractions of the image's, besides the whole
DUPLICATE_BITS = 72          # near-duplicate: distance at most this (of HASH_BITS)
FLOWERS102_DUPLICATES = Path(__file__).resolve().parent / "lists" / "flowers102_in_flowers17.txt"


def _dct_matrix(n):
    """The orthonormal DCT-II matrix C (n, n): C @ x is the DCT of the vector x."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return c


_DCT = _dct_matrix(HASH_SIDE)


def _spans(n):
    """[(start, stop)] along an axis of n px: the whole, then each crop at start, centre, end."""
    out = [(0, n)]
    for f in CROPS:
        m = max(1, int(round(f * n)))
        out += [(s, s + m) for s in sorted({0, (n - m) // 2, n - m})]
    return out


def window_hashes(image):
    """Perceptual hashes of an image's windows -> uint8 (n_windows, 32): packed bits, row 0 the
    whole image (see the module docstring). image: uint8 (h, w) gray or (h, w, 3) RGB, or a PIL
    image."""
    gray = np.asarray(image)
    if gray.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(gray[..., :3], dtype=np.uint8), cv2.COLOR_RGB2GRAY)
    gray = np.ascontiguousarray(gray, dtype=np.uint8)
    if min(gray.shape) > WORK_SIDE:
        gray = resize_short(gray, WORK_SIDE)
    wins = np.stack([cv2.resize(gray[y0:y1, x0:x1], (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)
                     for y0, y1 in _spans(gray.shape[0]) for x0, x1 in _spans(gray.shape[1])])
    coef = (_DCT @ wins.astype(np.float64) @ _DCT.T)[:, :HASH_FREQ, :HASH_FREQ]
    coef = coef.reshape(len(wins), -1)[:, 1:]
    bits = coef > np.median(coef, axis=1, keepdims=True)
    return np.packbits(np.pad(bits, ((0, 0), (0, 1))), axis=1)


def hash_file(path):
    """window_hashes of an image file. JPEGs are decoded at a reduced scale where that still
    leaves WORK_SIDE px (PIL's draft mode: faster, the same hash to a bit or two). An unreadable
    file -> UserError naming it."""
    try:
        with Image.open(path) as im:
            im.draft("L", (WORK_SIDE, WORK_SIDE))
            return window_hashes(np.asarray(ImageOps.exif_transpose(im).convert("L")))
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"cannot read image {path}: {' '.join(str(e).split()) or type(e).__name__}") from None


def hash_files(paths, workers=1, desc="hashing"):
    """hash_file of each path, in order -> uint8 (n, n_windows, 32); a process pool when
    workers > 1."""
    paths = list(paths)
    bar = dict(total=len(paths), desc=desc, unit="img", leave=False, disable=None)
    if workers > 1 and len(paths) > 1:
        with cf.ProcessPoolExecutor(workers) as ex:
            return np.stack(list(tqdm(ex.map(hash_file, paths, chunksize=16), **bar)))
    return np.stack([hash_file(p) for p in tqdm(paths, **bar)])


def _words(h):
    """uint8 (..., 32) packed bits -> uint64 (..., 4), for fast XOR + popcount."""
    return np.ascontiguousarray(h).view(np.uint64)


def nearest(a, b, chunk=64):
    """For each image of a: the index of its nearest image in b and their distance.
    a, b: window hashes (n, n_windows, 32) and (m, n_windows, 32) -> two int arrays (n,)."""
    wa, wb = _words(a), _words(b)
    whole_b = wb[:, 0]
    idx, dist = np.zeros(len(a), np.int64), np.zeros(len(a), np.int64)
    for s in range(0, len(a), chunk):
        x = wa[s:s + chunk]
        # windows of a against whole b, and whole a against windows of b -> (chunk, m)
        d1 = np.bitwise_count(x[:, :, None, :] ^ whole_b[None, None]).sum(-1, dtype=np.int64).min(1)
        d2 = np.bitwise_count(x[:, 0][:, None, None, :] ^ wb[None]).sum(-1, dtype=np.int64).min(2)
        d = np.minimum(d1, d2)
        idx[s:s + chunk] = d.argmin(1)
        dist[s:s + chunk] = d.min(1)
    return idx, dist


def distance(h1, h2):
    """The distance between two images' window hashes (each (n_windows, 32)) -> int."""
    return int(nearest(h1[None], h2[None])[1][0])


# ---------------------------------------------------------------------------------------------
# the Flowers102 / Flowers17 list

def _numbered_jpgs(root, digits):
    folder = Path(os.path.expanduser(str(root))) / "jpg"
    files = sorted(f for f in os.listdir(folder)
                   if re.fullmatch(rf"image_\d{{{digits}}}\.jpg", f)) if folder.is_dir() else []
    if not files:
        raise UserError(f"{root} has no jpg/image_{'N' * digits}.jpg files")
    return folder, files


def read_duplicates(path=FLOWERS102_DUPLICATES):
    """A duplicate list file -> {flowers102 id: (flowers17 id, distance)}. A missing or
    malformed file -> UserError naming it and the line."""
    out = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as e:
        raise UserError(f"cannot read the duplicate list {path}: {e.strerror or e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.fullmatch(r"image_(\d{5})\.jpg image_(\d{4})\.jpg (\d+)", line.strip())
        if not m:
            raise UserError(f"{path}:{n}: expected 'image_NNNNN.jpg image_MMMM.jpg DISTANCE', "
                            f"got {line.strip()[:60]!r}")
        out[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return out


def find_flowers102_duplicates(root17, root102, threshold=DUPLICATE_BITS, workers=1):
    """-> (rows [(flowers102 file, nearest flowers17 file, distance)] for the Flowers102 images
    within `threshold` of a Flowers17 image, in file order; the distance of every Flowers102
    image to its nearest Flowers17 image (int array))."""
    dir17, f17 = _numbered_jpgs(root17, 4)
    dir102, f102 = _numbered_jpgs(root102, 5)
    h17 = hash_files([dir17 / f for f in f17], workers, "hashing flowers17")
    h102 = hash_files([dir102 / f for f in f102], workers, "hashing flowers102")
    j, d = nearest(h102, h17)
    rows = [(f102[i], f17[j[i]], int(d[i])) for i in np.flatnonzero(d <= threshold)]
    return rows, d


@cli_main
def main(argv=None):
    """`python -m gan_colorize.dedup --flowers17 DIR --flowers102 DIR [--threshold --out
    --workers]`; its keys are the dedup section of the config."""
    cfg, _ = parse_tool(sys.argv[1:] if argv is None else argv, DEDUP)
    a = cfg.dedup
    if not 0 <= a.threshold < HASH_BITS or a.workers < 1:
        raise UserError(f"need 0 <= --threshold < {HASH_BITS} and --workers >= 1")
    rows, d = find_flowers102_duplicates(a.flowers17, a.flowers102, a.threshold, a.workers)
    hist = np.bincount(d, minlength=HASH_BITS + 1)
    print("distance to the nearest Flowers17 image: number of Flowers102 images")
    print("  " + ", ".join(f"{k}: {hist[k]}" for k in range(len(hist)) if hist[k]))
    print(f"{len(rows)} of {len(d)} Flowers102 images are near-duplicates of a Flowers17 image "
          f"(distance <= {a.threshold})")
    if a.out:
        head = ["# Flowers102 images that are near-duplicates of a Flowers17 image: the Flowers102",
                "# file, its nearest Flowers17 file and the distance of their perceptual hashes",
                f"# (gan_colorize/dedup.py; bits of {HASH_BITS}). splits.py keeps these images "
                "out of Flowers102 training.",
                "# Written by: python -m gan_colorize.dedup --flowers17 ROOT17 --flowers102 "
                f"ROOT102 --threshold {a.threshold} --out FILE"]
        write_atomic(a.out, "\n".join(head + [f"{x} {y} {k}" for x, y, k in rows]) + "\n")
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
