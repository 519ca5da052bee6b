"""Download the Oxford 17 Category Flower Dataset (Nilsback & Zisserman, CVPR 2006).

    python datasets/flowers17.py --root data/flowers17 [--no-trimaps]

Result (what `data.name=flowers17 data.root=<root>` expects):
    <root>/jpg/image_0001.jpg ... image_1360.jpg (+ files.txt)   17 classes x 80, in class order
    <root>/datasplits.mat      official splits; gan_colorize uses trn1 / val1 / tst1
    <root>/trimaps/image_NNNN.png   ground-truth segmentations for part of the images (optional)

Checks: 17flowers.tgz and datasplits.mat against the md5s that public loaders of this dataset
record; the unpacked JPEGs against an md5 digest of all 1360 files (so a re-packed archive with
the same images is still accepted, with a note). No md5 is known for trimaps.tgz: its content is
checked instead (a trimaps/ folder of image_NNNN.png files). Existing parts are skipped; delete
them to download again. For research use, as the dataset's authors publish it.
"""
import argparse
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _download as dl  # noqa: E402

URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/17/"
FILES = {  # name -> md5 of the file as served
    "17flowers.tgz": "b59a65d8d1a99cd66944d474e1289eab",
    "datasplits.mat": "4828cddfd0d803c5abbdebcb1e148a1e",
    "trimaps.tgz": None,
}
N_IMAGES = 1360
# md5 of the text "image_0001.jpg <md5>\nimage_0002.jpg <md5>\n..." over all 1360 JPEGs, sorted by
# name: pins the exact image content independently of how the archive was packed.
JPG_DIGEST = "e37daf62772f757c83bf38dcbd81ed5e"


def jpg_digest(folder):
    names = sorted(f for f in os.listdir(folder) if re.fullmatch(r"image_\d{4}\.jpg", f))
    text = "".join(f"{n} {dl.md5_of(os.path.join(folder, n))}\n" for n in names)
    return len(names), hashlib.md5(text.encode()).hexdigest()


def verify_jpgs(tree):
    n, digest = jpg_digest(os.path.join(tree, "jpg"))
    if n != N_IMAGES:
        raise dl.DownloadError(f"17flowers.tgz holds {n} images, expected {N_IMAGES}; nothing was kept")
    if digest != JPG_DIGEST:
        raise dl.DownloadError("17flowers.tgz images differ from the published dataset "
                               f"(content digest {digest}); nothing was kept")


def verify_trimaps(tree):
    folder = os.path.join(tree, "trimaps")
    n = sum(1 for f in os.listdir(folder) if re.fullmatch(r"image_\d{4}\.png", f))
    if n == 0:
        raise dl.DownloadError("trimaps.tgz holds no trimaps/image_NNNN.png files; nothing was kept")


def main(argv=None, base_url=URL):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/flowers17", help="destination folder (default %(default)s)")
    ap.add_argument("--no-trimaps", action="store_true", help="skip the segmentations")
    args = ap.parse_args(argv)
    root = os.path.abspath(os.path.expanduser(args.root))
    dl.fetch(root, base_url + "17flowers.tgz", FILES["17flowers.tgz"], unpack_dirs=["jpg"],
             verify=verify_jpgs, md5_strict=False)
    dl.fetch(root, base_url + "datasplits.mat", FILES["datasplits.mat"])
    if not args.no_trimaps:
        dl.fetch(root, base_url + "trimaps.tgz", None, unpack_dirs=["trimaps"], verify=verify_trimaps)
    print(f"Flowers17 ready in {root}\n  train with: --data.name flowers17 --data.root {root}")


if __name__ == "__main__":
    dl.run(main)
