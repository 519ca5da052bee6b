"""What several test files share: the tiny training config and hand-made checkpoints.

Tiny means the bundled sample photos at 32 px, width 0.25, batch 2, fp32, no loader workers:
seconds per run on a 2-core CPU. A hand-made checkpoint is laid out like trainer.make_state
(g_ema, config, step) with a generator whose output bias paints strong colour everywhere
(a ~ 50, b ~ -32 in Lab), so leaks and gamut limits are really exercised.

For the data tests (splits, cache, data): synthetic colour images, a DataConfig with its cache
in a temp folder, and three datasets on disk - a folder of awkward files, a tiny Flowers17 with
trimaps, the cached `samples` photos. Plain helpers are imported by name (`from conftest
import dcfg`); the fixtures are found by pytest.
"""
import dataclasses
import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from gan_colorize.data.cache import ImageCache
from gan_colorize.core.config import DataConfig
from gan_colorize.core.parser import load_config
from gan_colorize.model.networks import build_generator

# The real data sets (read each one's README), where a machine has them: ../shared/datasets beside
# the clone (CI), or $GAN_COLORIZE_SHARED/datasets (e.g. a git worktree elsewhere). Tests that use
# them skip without them.
SHARED = Path(os.environ.get("GAN_COLORIZE_SHARED")
              or Path(__file__).resolve().parents[1].parent / "shared") / "datasets"

TINY = ["--config", "quickstart", "--model.width", "0.25", "--data.size", "32",
        "--train.batch_size", "2", "--data.workers", "0", "--train.precision", "fp32",
        "--train.log_every", "1", "--train.sample_every", "1000", "--train.ckpt_every", "1000",
        "--train.eval_every", "0"]


def tiny_config(*argv, cache_dir):
    """The tiny training Config, its image cache in `cache_dir`, with `argv` overrides on top."""
    return load_config([*TINY, "--train.latest_every", "1000", "--data.cache_dir", str(cache_dir),
                        *map(str, argv)])


def output_layer(g):
    """The generator's last convolution: the one whose bias sets the output colour."""
    return [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]


def hand_made_checkpoint(path, *argv, step=3, ab_bias=(0.5, -0.3), seed=0):
    """Write a checkpoint of a fresh generator (config: defaults + argv) whose output layer's
    bias is `ab_bias` (model units; None keeps the init) -> path."""
    cfg = load_config([*map(str, argv)], check_paths=False)
    torch.manual_seed(seed)
    g = build_generator(cfg.model, cfg.hints)
    if ab_bias is not None:
        with torch.no_grad():
            bias = output_layer(g).bias
            bias[:2] = torch.tensor(ab_bias)
            if len(bias) == 3:   # unet11's gate (networks.py): open, so ab = tanh(ab_bias)
                bias[2] = 20.0
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "gan_colorize/1", "g_ema": g.state_dict(), "config": cfg.to_dict(),
                "step": step}, path)
    return path


# ---------------------------------------------------------------------------------------------
# data

def colourful(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / (w - 1), y / (h - 1), 1 - x / (w - 1)], -1) * 255
    rgb += np.random.default_rng(seed).normal(0, 10, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def dcfg(root, tmp_path, name="folder", size=32, **kw):
    """A real DataConfig for `root`, its cache under tmp_path; no decode workers, and (for
    `folder`) every image in every split unless kw sets the fractions."""
    d = DataConfig(name=name, root=str(root), size=size, cache_dir=str(tmp_path / "cache"), workers=0,
                   min_ab_range=5.0, val_fraction=0.0, test_fraction=0.0)
    return dataclasses.replace(d, **kw)


def build(d, split="train", **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cache = ImageCache(d, split, **kw)
    return cache, [str(x.message) for x in w]


# ---------------------------------------------------------------------------------------------
# a folder of awkward files

GOOD = ["good1.jpg", "sub/good2.PNG", "sub/deeper/good3.webp", "good4.bmp", "good5.tif",
        "rgba.png", "palette.png", "cmyk.jpg", "rgb16.png", "exif.jpg"]
BAD = ["corrupt.jpg", "zero.png", "truncated.jpg"]
GRAY = ["gray.png", "gray_rgb.jpg"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    for d in ("sub/deeper", ".hidden"):
        (root / d).mkdir(parents=True)
    a = colourful(48, 64)
    Image.fromarray(a).save(root / "good1.jpg", quality=95)
    Image.fromarray(colourful(40, 40, 1)).save(root / "sub/good2.PNG")
    Image.fromarray(colourful(50, 45, 2)).save(root / "sub/deeper/good3.webp")
    Image.fromarray(colourful(36, 60, 3)).save(root / "good4.bmp")
    Image.fromarray(colourful(44, 52, 4)).save(root / "good5.tif")
    Image.fromarray(np.dstack([colourful(40, 48, 5), np.full((40, 48), 255, np.uint8)])).save(root / "rgba.png")
    Image.fromarray(colourful(40, 40, 6)).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "palette.png")
    Image.fromarray(colourful(40, 56, 7)).convert("CMYK").save(root / "cmyk.jpg")
    cv2.imwrite(str(root / "rgb16.png"), (colourful(40, 44, 8).astype(np.uint16) * 257)[..., ::-1])
    im = Image.fromarray(colourful(40, 70, 9))  # stored landscape, EXIF says rotate: portrait
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(root / "exif.jpg", exif=exif)
    (root / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(3000))
    (root / "zero.png").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(colourful(64, 64, 10)).save(buf, "JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[:600])
    Image.fromarray(colourful(40, 40, 11)[..., 0]).save(root / "gray.png")
    g = colourful(40, 40, 12)[..., 1]
    Image.fromarray(np.repeat(g[..., None], 3, 2)).save(root / "gray_rgb.jpg")
    (root / "notes.txt").write_text("not an image")
    Image.fromarray(a).save(root / ".hidden/skip.jpg")
    Image.fromarray(a).save(root / ".dotfile.jpg")
    return root


@pytest.fixture()
def f17_with_segs(tmp_path):
    """A tiny Flowers17 with real colour images whose trimap marks a red square."""
    from scipy.io import savemat
    root = tmp_path / "f17s"
    (root / "jpg").mkdir(parents=True)
    (root / "trimaps").mkdir()
    for k in range(1, 5):
        img = colourful(60, 80, k)
        img[..., 0] //= 3                  # no red outside the square
        img[15:45, 20:50] = (255, 0, 0)
        Image.fromarray(img).save(root / "jpg" / f"image_{k:04d}.jpg", quality=98)
        tri = np.zeros((60, 80, 3), np.uint8)
        tri[15:45, 20:50] = (128, 0, 0)
        if k != 4:  # image 4 has no trimap
            Image.fromarray(tri).save(root / "trimaps" / f"image_{k:04d}.png")
    savemat(root / "datasplits.mat", {"trn1": np.array([[1, 2, 3, 4]]), "val1": np.array([[1]]),
                                      "tst1": np.array([[2]])})
    return root


@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("samples")
    return ImageCache(dcfg("", tmp, name="samples", size=64), "train", progress=False)


# ---------------------------------------------------------------------------------------------
# a tiny BSDS500 with human segmentations

def bsds_labels(h, w, k):
    """Annotation k of a (h, w) image: 0 -> quadrants (4 segments), 1 -> left / right halves
    with a small square (3 segments), 2 -> a 2 x 3 grid (6 segments); labels 1..K as uint16."""
    y, x = np.mgrid[0:h, 0:w]
    if k == 0:
        lab = 1 + (y >= h // 2) * 2 + (x >= w // 2)
    elif k == 1:
        lab = 1 + (x >= w // 2)
        lab[h // 4:h // 4 + h // 4, w // 8:w // 8 + w // 4] = 3
    else:
        lab = 1 + (2 * y // h) * 3 + 3 * x // w
    return lab.astype(np.uint16)


def write_ground_truth(path, labels):
    """A groundTruth .mat laid out as BSDS500's: a 1 x A cell of structs (Segmentation,
    Boundaries), read by scipy.io.loadmat(path)["groundTruth"][0, k]["Segmentation"][0, 0]."""
    from scipy.io import savemat
    cell = np.empty((1, len(labels)), dtype=object)
    for k, lab in enumerate(labels):
        edges = np.zeros(lab.shape, np.uint8)
        edges[:-1] |= lab[:-1] != lab[1:]
        edges[:, :-1] |= lab[:, :-1] != lab[:, 1:]
        cell[0, k] = {"Segmentation": lab, "Boundaries": edges}
    savemat(path, {"groundTruth": cell})


@pytest.fixture(scope="module")
def bsds_tree(tmp_path_factory):
    """BSDS500's data folder with a test split of 4 photos: 3 with 2-3 annotations (one
    portrait), one without its .mat."""
    root = tmp_path_factory.mktemp("bsds") / "data"
    (root / "images" / "test").mkdir(parents=True)
    (root / "groundTruth" / "test").mkdir(parents=True)
    for n, (h, w, a) in enumerate([(48, 72, 3), (72, 48, 2), (48, 72, 3), (48, 72, 0)]):
        Image.fromarray(colourful(h, w, 20 + n)).save(root / "images" / "test" / f"{100 + n}.jpg", quality=95)
        if a:
            write_ground_truth(root / "groundTruth" / "test" / f"{100 + n}.mat",
                               [bsds_labels(h, w, k) for k in range(a)])
    return root
