"""Download the Oxford 102 Category Flower Dataset (Nilsback & Zisserman, ICVGIP 2008).

    python datasets/flowers102.py --root data/flowers102 [--no-segmentations]

Result (what `data.name=flowers102 data.root=<root>` expects):
    <root>/jpg/image_00001.jpg ... image_08189.jpg
    <root>/setid.mat           official splits trnid / valid / tstid (1-based image ids)
    <root>/imagelabels.mat     class labels (not used for training; kept for completeness)
    <root>/segmim/segmim_NNNNN.jpg   segmentations: background painted pure blue (optional)

Checks: 102flowers.tgz, imagelabels.mat and setid.mat against the md5s torchvision's Flowers102
records; the unpacked archive must hold 8189 images. For 102segmentations.tgz the md5 that a
third-party loader records is checked leniently (a mismatch is reported and the content decides:
a segmim/ folder of segmim_NNNNN.jpg files). Existing parts are skipped; delete them to download
again. For research use, as the dataset's authors publish it.
"""
import argparse
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _download as dl  # noqa: E402

URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"
FILES = {  # name -> md5 of the file as served
    "102flowers.tgz": "52808999861908f626f3c1f4e79d11fa",
    "imagelabels.mat": "e0620be6f572b9609742df49c70aed4d",
    "setid.mat": "a5357ecc9cb78c4bef273ce3793fc85c",
    "102segmentations.tgz": "51375996b6c4f367a4b9f4492d7ecef5",
}
N_IMAGES = 8189


def verify_segmentations(tree):
    folder = os.path.join(tree, "segmim")
    n = sum(1 for f in os.listdir(folder) if re.fullmatch(r"segmim_\d{5}\.jpg", f))
    if n == 0:
        raise dl.DownloadError("102segmentations.tgz holds no segmim/segmim_NNNNN.jpg files; "
                               "nothing was kept")


def main(argv=None, base_url=URL):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/flowers102", help="destination folder (default %(default)s)")
    ap.add_argument("--no-segmentations", action="store_true", help="skip 102segmentations.tgz")
    args = ap.parse_args(argv)
    root = os.path.abspath(os.path.expanduser(args.root))
    dl.fetch(root, base_url + "102flowers.tgz", FILES["102flowers.tgz"], unpack_dirs=["jpg"],
             verify=dl.expect_count("jpg", ".jpg", N_IMAGES))
    for name in ("imagelabels.mat", "setid.mat"):
        dl.fetch(root, base_url + name, FILES[name])
    if not args.no_segmentations:
        dl.fetch(root, base_url + "102segmentations.tgz", FILES["102segmentations.tgz"],
                 unpack_dirs=["segmim"], verify=verify_segmentations, md5_strict=False)
    print(f"Flowers102 ready in {root}\n  train with: --data.name flowers102 --data.root {root}")


if __name__ == "__main__":
    dl.run(main)
