"""data.py: split rules, the decode-once cache, TrainDataset items, resumable sampling, loaders."""
import io
import os
import pickle
import socket
import warnings
from pathlib import Path
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from gan_colorize import data
from gan_colorize.data import ImageCache, Record, ResumableSampler, TrainDataset, build_loader, list_split
from gan_colorize.errors import UserError
from gan_colorize.masks import MaskSampler, impa_mask

SHARED_F17 = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "flowers17"


def colourful(h, w, seed=0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / (w - 1), y / (h - 1), 1 - x / (w - 1)], -1) * 255
    rgb += np.random.default_rng(seed).normal(0, 10, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def dcfg(root, tmp_path, name="folder", size=32, **kw):
    d = NS(name=name, root=str(root), size=size, cache_dir=str(tmp_path / "cache"), workers=0,
           min_ab_range=5.0, val_fraction=0.0, test_fraction=0.0)
    d.__dict__.update(kw)
    return d


def full_cfg(d, train="impa:1,stripes:1,rect:1,brush:1", eval="impa:1,brush:1", pairing="random",
             batch_size=4, eval_batch_size=3):
    return NS(data=d, masks=NS(train=train, eval=eval, pairing=pairing),
              train=NS(seed=7, batch_size=batch_size), eval=NS(seed=3, batch_size=eval_batch_size))


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


def build(d, split="train", **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        cache = ImageCache(d, split, **kw)
    return cache, [str(x.message) for x in w]


def test_folder_listing(tree, tmp_path):
    keys = sorted(r.key for r in list_split(dcfg(tree, tmp_path), "train"))
    assert keys == sorted(GOOD + BAD + GRAY)  # .txt, hidden folder and dotfile are not listed


def test_folder_cache_skips_and_excludes(tree, tmp_path):
    cache, msgs = build(dcfg(tree, tmp_path))
    assert cache.built_now and cache.build_seconds > 0
    assert sorted(cache.keys) == sorted(GOOD)
    assert sorted(os.path.basename(p) for p, _ in cache.skipped) == sorted(os.path.basename(b) for b in BAD)
    assert sorted(os.path.basename(p) for p, _ in cache.low_colour) == sorted(GRAY)
    assert cache.n_records == len(GOOD + BAD + GRAY)
    bad_msg = [m for m in msgs if "could not be read" in m]
    low_msg = [m for m in msgs if "almost no colour" in m]
    assert len(bad_msg) == 1 and len(low_msg) == 1 and len(msgs) == 2
    assert "skipped 3 of 15" in bad_msg[0] and all(os.path.basename(b) in bad_msg[0] for b in BAD)
    assert "left out 2 of 15" in low_msg[0] and "gray.png" in low_msg[0]
    # working size: shorter side round(1.15 * 32) = 37, aspect kept
    for (h, w), key in zip(cache.shapes, cache.keys):
        assert min(h, w) == 37
    i = cache.keys.index("good1.jpg")
    assert cache.shapes[i] == (37, round(64 * 37 / 48))
    img = cache.image(i)
    assert img.dtype == np.uint8 and img.shape == (37, 49, 3) and not img.flags.writeable
    assert cache.segmentation(i) is None
    # EXIF rotation: stored 70 wide x 40 high, read portrait
    h, w = cache.shapes[cache.keys.index("exif.jpg")]
    assert h > w
    # the layout: one flat file + index, nothing temporary left over
    assert sorted(os.listdir(cache.dir)) == ["images.u8", "index.json", "segs.u8"]
    assert os.path.getsize(os.path.join(cache.dir, "images.u8")) == sum(h * w * 3 for h, w in cache.shapes)
    assert [p for p in os.listdir(tmp_path / "cache") if p.startswith(".")] == []


def test_cache_reuse_decodes_nothing(tree, tmp_path, monkeypatch):
    first, _ = build(dcfg(tree, tmp_path))
    def boom(*a, **k):
        raise AssertionError("decoded on reuse")
    monkeypatch.setattr(data, "read_rgb", boom)
    monkeypatch.setattr(data, "_decode", boom)
    second, msgs = build(dcfg(tree, tmp_path))
    assert not second.built_now and second.build_seconds == 0 and second.dir == first.dir
    assert second.keys == first.keys and len(msgs) == 2  # the counts are reported again
    for i in range(len(first)):
        assert np.array_equal(first.image(i), second.image(i))


def test_cache_key_changes_with_size_and_colour_threshold(tree, tmp_path):
    a, _ = build(dcfg(tree, tmp_path))
    b, _ = build(dcfg(tree, tmp_path, size=64))
    c, _ = build(dcfg(tree, tmp_path, min_ab_range=0.0))
    assert len({a.dir, b.dir, c.dir}) == 3
    assert min(b.shapes[0]) == round(1.15 * 64)
    assert len(c.low_colour) == 0 and len(c) == len(GOOD) + len(GRAY)


def test_cache_key_sees_changed_files(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for k in range(3):
        Image.fromarray(colourful(40, 40, k)).save(root / f"{k}.png")
    a, _ = build(dcfg(root, tmp_path))
    Image.fromarray(colourful(40, 40, 9)).save(root / "3.png")
    b, _ = build(dcfg(root, tmp_path))
    assert b.built_now and len(b) == 4 and b.dir != a.dir


def test_crash_leaves_no_half_cache(tree, tmp_path, monkeypatch):
    calls = []
    real = data._decode
    def flaky(*a):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*a)
    monkeypatch.setattr(data, "_decode", flaky)
    d = dcfg(tree, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        build(d)
    assert os.listdir(tmp_path / "cache") == []
    monkeypatch.setattr(data, "_decode", real)
    assert build(d)[0].built_now


def test_parallel_build_matches_serial(tree, tmp_path, monkeypatch):
    records = list_split(dcfg(tree, tmp_path), "train") * 5  # >= 64 records: the pool kicks in
    records = [Record(r.path, f"{k}/{r.key}") for k, r in enumerate(records)]
    s, _ = build(dcfg(tree, tmp_path / "a"), records=records, workers=0)
    p, _ = build(dcfg(tree, tmp_path / "b"), records=records, workers=2)
    assert s.keys == p.keys and len(s) == 50
    assert all(np.array_equal(s.image(i), p.image(i)) for i in range(len(s)))


def test_no_usable_image(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"")
    Image.fromarray(np.full((30, 30), 90, np.uint8)).save(root / "b.png")
    with pytest.raises(UserError, match="no usable image among 2 files"):
        build(dcfg(root, tmp_path))
    assert os.listdir(tmp_path / "cache") == []


def test_bad_roots(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_split(dcfg(tmp_path / "nope", tmp_path), "train")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="holds no images"):
        list_split(dcfg(tmp_path / "empty", tmp_path), "train")
    with pytest.raises(UserError, match="no Flowers17 images"):
        list_split(dcfg(tmp_path / "empty", tmp_path, name="flowers17"), "train")
    with pytest.raises(UserError, match="must be set"):
        list_split(dcfg("", tmp_path, name="flowers102"), "train")
    with pytest.raises(UserError, match="unknown dataset"):
        list_split(dcfg(tmp_path, tmp_path, name="imagenet"), "train")
    with pytest.raises(UserError, match="unknown split"):
        list_split(dcfg(tmp_path, tmp_path, name="samples"), "training")


def test_folder_hash_split(tmp_path):
    root = tmp_path / "many"
    root.mkdir()
    for k in range(200):
        (root / f"img_{k:03d}.jpg").write_bytes(b"")  # listing never decodes
    d = dcfg(root, tmp_path, val_fraction=0.1, test_fraction=0.2)
    parts = {s: [r.key for r in list_split(d, s)] for s in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 200
    assert set(parts["train"]) | set(parts["val"]) | set(parts["test"]) == {f"img_{k:03d}.jpg" for k in range(200)}
    assert 10 <= len(parts["val"]) <= 32 and 25 <= len(parts["test"]) <= 55
    assert parts == {s: [r.key for r in list_split(d, s)] for s in ("train", "val", "test")}
    # a file's split depends only on its own path: adding files moves nobody
    (root / "zzz.jpg").write_bytes(b"")
    again = {s: {r.key for r in list_split(d, s)} for s in ("train", "val", "test")}
    assert all(set(parts[s]) <= again[s] for s in parts)


def test_small_folder_uses_everything(tmp_path):
    root = tmp_path / "few"
    root.mkdir()
    for k in range(3):
        (root / f"{k}.png").write_bytes(b"")
    d = dcfg(root, tmp_path, val_fraction=0.1, test_fraction=0.1)
    with pytest.warns(UserWarning, match="only 3 images"):
        assert len(list_split(d, "test")) == 3


# ---------------------------------------------------------------------------------------------
# samples, flowers17, flowers102

def test_samples_offline(tmp_path, monkeypatch):
    def no_net(*a, **k):
        raise AssertionError("network access")
    monkeypatch.setattr(socket.socket, "connect", no_net)
    monkeypatch.setattr(socket, "create_connection", no_net)
    monkeypatch.setattr(socket, "getaddrinfo", no_net)
    d = dcfg("", tmp_path, name="samples", size=64)
    for split in ("train", "val", "test"):
        assert [r.key for r in list_split(d, split)] == [f"skimage/{f}" for f in data.SAMPLE_FILES]
    cache, msgs = build(d)
    assert len(cache) == 5 and msgs == [] and all(min(s) == 74 for s in cache.shapes)


def fake_flowers17(root, n=1360):
    (root / "jpg").mkdir(parents=True)
    for k in range(1, n + 1):
        (root / "jpg" / f"image_{k:04d}.jpg").write_bytes(b"")
    return root


def test_flowers17_fallback_split(tmp_path):
    root = fake_flowers17(tmp_path / "f17")
    d = dcfg(root, tmp_path, name="flowers17")
    ids = {s: [int(r.key[10:14]) for r in list_split(d, s)] for s in ("train", "val", "test")}
    for s, per_class in (("train", 40), ("val", 20), ("test", 20)):
        counts = np.bincount([(n - 1) // 80 for n in ids[s]], minlength=17)
        assert (counts == per_class).all(), s
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(1, 1361))
    assert ids["val"] != list(range(41, 61))  # hash order, not file order
    # pinned: the documented rule must never move an image to another split
    assert ids["train"][:5] == [3, 5, 7, 8, 9] and ids["val"][:5] == [1, 4, 12, 19, 20]
    assert ids["test"][:5] == [2, 6, 13, 15, 18]
    # an image's split does not depend on which other files are present
    (root / "jpg" / f"image_{ids['train'][0]:04d}.jpg").unlink()
    again = {s: [int(r.key[10:14]) for r in list_split(d, s)] for s in ("train", "val", "test")}
    assert again["val"] == ids["val"] and again["train"] == ids["train"][1:]


def test_flowers17_official_split_and_trimaps(tmp_path):
    from scipy.io import savemat
    root = fake_flowers17(tmp_path / "f17")
    savemat(root / "datasplits.mat", {"trn1": np.array([[3, 1, 2]]), "val1": np.array([[4]]),
                                      "tst1": np.array([[5, 6]]), "trn2": np.array([[7]])})
    (root / "trimaps").mkdir()
    (root / "trimaps" / "image_0002.png").write_bytes(b"")
    d = dcfg(root, tmp_path, name="flowers17")
    train = list_split(d, "train")
    assert [r.key for r in train] == ["jpg/image_0001.jpg", "jpg/image_0002.jpg", "jpg/image_0003.jpg"]
    assert [r.seg_path is not None for r in train] == [False, True, False]
    assert [r.key for r in list_split(d, "test")] == ["jpg/image_0005.jpg", "jpg/image_0006.jpg"]
    # root may also point at the jpg folder itself
    d2 = dcfg(root / "jpg", tmp_path, name="flowers17")
    assert len(list_split(d2, "train")) == 680


def test_flowers102(tmp_path):
    from scipy.io import savemat
    root = tmp_path / "f102"
    (root / "jpg").mkdir(parents=True)
    (root / "segmim").mkdir()
    for k in range(1, 9):
        (root / "jpg" / f"image_{k:05d}.jpg").write_bytes(b"")
    (root / "segmim" / "segmim_00002.jpg").write_bytes(b"")
    d = dcfg(root, tmp_path, name="flowers102")
    with pytest.raises(UserError, match="setid.mat"):
        list_split(d, "train")
    savemat(root / "setid.mat", {"trnid": np.array([[2, 1]]), "valid": np.array([[3, 4]]),
                                 "tstid": np.array([[5, 6, 7, 8]])})
    train = list_split(d, "train")
    assert [r.key for r in train] == ["jpg/image_00001.jpg", "jpg/image_00002.jpg"]
    assert train[1].seg_path.endswith("segmim_00002.jpg") and train[1].seg_kind == "segmim"
    assert len(list_split(d, "test")) == 4


def test_segmentation_decoding():
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 2] = 254
    blue[1:3, 1:3] = (200, 40, 90)   # flower
    assert data._seg_foreground(blue, "segmim").sum() == 4
    tri = np.zeros((4, 4, 3), np.uint8)
    tri[0] = 128                      # gray border: not foreground
    tri[2:, 2:] = (128, 0, 0)         # labelled colour
    assert data._seg_foreground(tri, "trimap").sum() == 4
    gray_tri = np.zeros((4, 4, 3), np.uint8)
    gray_tri[0] = 128
    gray_tri[3] = 255
    assert data._seg_foreground(gray_tri, "trimap").tolist() == [[0] * 4] * 3 + [[1] * 4]


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


def test_segmentations_cached_and_aligned(f17_with_segs, tmp_path):
    d = dcfg(f17_with_segs, tmp_path, name="flowers17", size=32)
    cache, _ = build(d)
    assert cache.has_seg.tolist() == [True, True, True, False]
    seg = cache.segmentation(0)
    assert seg.shape == cache.shapes[0] and set(np.unique(seg)) == {0, 1}
    for train in (True, False):
        ds = TrainDataset(cache, MaskSampler("segmentation"), 32, train=train, seed=1)
        assert len(ds) == 3  # the image without a trimap is left out
        for key in [(e, p, p % 3) for e in range(3) for p in range(3)] if train else range(3):
            item = ds[key]
            rgb = item["rgb"].numpy().transpose(1, 2, 0).astype(int)
            red = (rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)
            m = item["mask"][0].numpy() > 0.5
            # crop, resize and flip move image and segmentation together, to the pixel
            assert red.sum() > 50 and (red & ~m).sum() <= 2 and m.sum() < 1.5 * red.sum()
    no_segs, _ = build(dcfg("", tmp_path, name="samples"))
    with pytest.raises(UserError, match="needs segmentations"):
        TrainDataset(no_segs, MaskSampler("segmentation"), 32, train=False)


@pytest.mark.skipif(not SHARED_F17.is_dir(), reason="no ../shared/datasets/flowers17 here")
def test_real_flowers17(tmp_path):
    d = dcfg(SHARED_F17, tmp_path, name="flowers17", workers=2)
    sizes = {s: len(list_split(d, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 680, "val": 340, "test": 340}
    cache, msgs = build(d, "val")
    assert len(cache) + len(cache.low_colour) + len(cache.skipped) == 340 and cache.skipped == []


# ---------------------------------------------------------------------------------------------
# TrainDataset

@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("samples")
    return ImageCache(dcfg("", tmp, name="samples", size=64), "train", progress=False)


def test_items_shapes_and_determinism(sample_cache):
    sampler = MaskSampler("impa:1,brush:1,rect:1")
    for train in (True, False):
        ds = TrainDataset(sample_cache, sampler, 64, train=train, seed=5)
        assert len(ds) == 5
        it = ds[(0, 0, 2)] if train else ds[2]
        assert it["rgb"].shape == (3, 64, 64) and it["rgb"].dtype == torch.uint8
        assert it["mask"].shape == (1, 64, 64) and it["mask"].dtype == torch.float32
        assert set(torch.unique(it["mask"]).tolist()) <= {0.0, 1.0}
        assert it["family"].dtype == torch.int64 and 0 <= int(it["family"]) < 3
        assert it["index"].dtype == torch.int64 and int(it["index"]) == 2
        again = ds[(0, 0, 2)] if train else ds[2]
        assert torch.equal(it["rgb"], again["rgb"]) and torch.equal(it["mask"], again["mask"])
    ds = TrainDataset(sample_cache, sampler, 64, train=True, seed=5)
    views = [ds[(e, 0, 2)]["rgb"] for e in range(4)]
    assert not all(torch.equal(views[0], v) for v in views[1:])  # epochs give new crops
    with pytest.raises(IndexError):
        ds[5]


def test_eval_view_is_centre_crop(sample_cache):
    ds = TrainDataset(sample_cache, MaskSampler("full"), 64, train=False)
    i = sample_cache.keys.index("skimage/chelsea.png")
    img = data.resize_short(sample_cache.image(i), 64)
    x0 = (img.shape[1] - 64) // 2
    assert np.array_equal(ds[i]["rgb"].numpy().transpose(1, 2, 0), img[:, x0:x0 + 64])
    assert ds[i]["mask"].sum() == 64 * 64


def test_eval_masks_follow_mask_rng(sample_cache):
    from gan_colorize.masks import mask_rng
    sampler = MaskSampler("brush:1,rect:1")
    ds = TrainDataset(sample_cache, sampler, 64, train=False, seed=11)
    for i in range(5):
        img = ds[i]["rgb"].numpy().transpose(1, 2, 0)
        m, fam = sampler.sample(64, 64, mask_rng(11, i), image=img)
        assert np.array_equal(ds[i]["mask"][0].numpy(), m)
        assert int(ds[i]["family"]) == sampler.families.index(fam)


def test_pairing_all(sample_cache):
    ds = TrainDataset(sample_cache, MaskSampler("impa:1,full:1"), 64, train=False, pairing="all")
    assert ds.n_masks == 11 and len(ds) == 5 * 11
    for i in (0, 10, 11, 23, 54):
        it = ds[i]
        k = i % 11
        expect = impa_mask(k, 64, 64) if k < 10 else np.ones((64, 64), np.float32)
        assert np.array_equal(it["mask"][0].numpy(), expect)
        assert int(it["family"]) == (0 if k < 10 else 1)
        assert torch.equal(it["rgb"], ds[(i // 11) * 11]["rgb"])  # same image across its masks


# ---------------------------------------------------------------------------------------------
# ResumableSampler

def test_sampler_order_and_resume():
    s = ResumableSampler(10, shuffle=True, seed=3)
    s.set_epoch(0)
    e0 = list(s)
    assert sorted(e0) == list(range(10)) and e0 == list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e1 != e0 and sorted(e1) == list(range(10))
    s.set_epoch(0)
    s.set_start(4)
    assert len(s) == 6 and list(s) == e0[4:]
    assert len(s) == 10 and list(s) == e0  # the skip applies once
    with pytest.raises(ValueError):
        s.set_start(11)
    assert list(ResumableSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_sampler_min_len_and_tags():
    s = ResumableSampler(3, shuffle=True, seed=0, min_len=8, tag_epoch=True)
    s.set_epoch(2)
    items = list(s)
    assert len(items) == len(s) == 9
    assert [p for _, p, _ in items] == list(range(9)) and {e for e, _, _ in items} == {2}
    idx = [i for _, _, i in items]
    assert all(sorted(idx[k:k + 3]) == [0, 1, 2] for k in (0, 3, 6))


@pytest.mark.parametrize("n,ws", [(10, 3), (12, 4), (7, 2)])
def test_sampler_multi_rank(n, ws):
    train = [ResumableSampler(n, shuffle=True, seed=1, rank=r, world_size=ws, tag_epoch=True) for r in range(ws)]
    shards = [list(s) for s in train]
    assert len({len(x) for x in shards}) == 1  # even for training
    pos = sorted(p for x in shards for _, p, _ in x)
    assert set(i for x in shards for _, _, i in x) == set(range(n))
    assert pos[:n] == list(range(n))
    single = [i for _, _, i in ResumableSampler(n, shuffle=True, seed=1, tag_epoch=True)]
    for x in shards:  # the global order is the single-rank order, dealt out
        assert all(single[p % n] == i for _, p, i in x)
    for r, s in enumerate(train):
        s.set_start(2)
        assert list(s) == shards[r][2:]
    ev = [list(ResumableSampler(n, shuffle=False, rank=r, world_size=ws, even=False)) for r in range(ws)]
    assert sorted(i for x in ev for i in x) == list(range(n))  # evaluation: each sample once


# ---------------------------------------------------------------------------------------------
# loaders

def _collect(loader):
    return [{k: v.clone() for k, v in b.items()} for b in loader]


def _cat(batches, key):
    return torch.cat([b[key] for b in batches])


@pytest.mark.filterwarnings("ignore:folder/train")
def test_eval_loader_independent_of_batch_size_and_workers(tree, tmp_path):
    d = dcfg(tree, tmp_path)
    runs = []
    for bs, workers in ((1, 0), (4, 2), (3, 0)):
        d.workers = workers
        loader, sampler = build_loader(full_cfg(d, eval_batch_size=bs), "train", train=False)
        assert loader.persistent_workers == (workers > 0) and not loader.drop_last
        runs.append(_collect(loader))
    for key in ("rgb", "mask", "family", "index"):
        ref = _cat(runs[0], key)
        assert len(ref) == len(GOOD)
        for r in runs[1:]:
            assert torch.equal(ref, _cat(r, key))
    assert _cat(runs[0], "index").tolist() == list(range(len(GOOD)))


@pytest.mark.filterwarnings("ignore:folder/train")
def test_train_loader_deterministic_and_resumable(tree, tmp_path):
    d = dcfg(tree, tmp_path)
    out = []
    for workers in (0, 2):
        d.workers = workers
        loader, sampler = build_loader(full_cfg(d, batch_size=3), "train", train=True)
        assert loader.drop_last and isinstance(sampler, ResumableSampler)
        sampler.set_epoch(1)
        out.append(_collect(loader))
    assert len(out[0]) == len(GOOD) // 3
    for a, b in zip(*out):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # resume after 2 batches of epoch 1: the rest is exactly what the full epoch gave
    d.workers = 0
    loader, sampler = build_loader(full_cfg(d, batch_size=3), "train", train=True)
    sampler.set_epoch(1)
    sampler.set_start(2 * 3)
    rest = _collect(loader)
    assert len(rest) == len(out[0]) - 2
    for a, b in zip(rest, out[0][2:]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    b0 = out[0][0]
    assert b0["rgb"].shape == (3, 3, 32, 32) and b0["mask"].shape == (3, 1, 32, 32)


def test_tiny_dataset_still_fills_a_batch(tmp_path):
    cfg = full_cfg(dcfg("", tmp_path, name="samples", size=32), batch_size=8)
    loader, sampler = build_loader(cfg, "train", train=True)
    batches = _collect(loader)
    assert len(batches) == 1 and batches[0]["rgb"].shape[0] == 8


def test_loader_mask_folder_max_samples_and_pairing(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    m = np.zeros((8, 8), np.uint8)
    m[:, :4] = 255
    Image.fromarray(m).save(masks / "left.png")
    Image.fromarray(255 - m).save(masks / "right.png")
    cfg = full_cfg(dcfg("", tmp_path, name="samples", size=32), eval=str(masks), pairing="all",
                   train="impa:1")
    loader, _ = build_loader(cfg, "test", train=False)
    assert len(loader.dataset) == 5 * 2
    batches = _collect(loader)
    ms = _cat(batches, "mask")
    assert ms[0, 0, :, :16].eq(1).all() and ms[1, 0, :, 16:].eq(1).all()
    loader, _ = build_loader(cfg, "test", train=False, max_samples=4)
    assert len(_cat(_collect(loader), "index")) == 4
    cfg.masks.train = "brush:1"
    with pytest.raises(UserError, match="fixed mask families"):
        build_loader(cfg, "train", train=True)


def test_cache_pickles_without_pixels(sample_cache):
    sample_cache.image(0)  # opens the memmap
    blob = pickle.dumps(sample_cache)
    assert len(blob) < 20_000
    clone = pickle.loads(blob)
    assert np.array_equal(clone.image(3), sample_cache.image(3))


def test_damaged_cache_is_rebuilt(tmp_path):
    d = dcfg("", tmp_path, name="samples", size=32)
    a, _ = build(d)
    with open(os.path.join(a.dir, "images.u8"), "r+b") as f:
        f.truncate(100)  # e.g. a disk that filled up under someone else's hands
    b, _ = build(d)
    assert b.built_now and b.dir == a.dir and len(b) == 5
    assert os.path.getsize(os.path.join(b.dir, "images.u8")) == sum(h * w * 3 for h, w in b.shapes)


def test_samples_cache_does_not_depend_on_cwd(tmp_path, monkeypatch):
    d = dcfg("", tmp_path, name="samples", size=32)
    a, _ = build(d)
    monkeypatch.chdir(tmp_path)
    b, _ = build(d)
    assert b.dir == a.dir and not b.built_now


def test_broken_segmentation_only_loses_the_segmentation(f17_with_segs, tmp_path):
    (f17_with_segs / "trimaps" / "image_0002.png").write_bytes(b"broken")
    cache, _ = build(dcfg(f17_with_segs, tmp_path, name="flowers17", size=32))
    assert len(cache) == 4 and cache.has_seg.tolist() == [True, False, True, False]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), ws=st.integers(1, 4), min_len=st.integers(0, 40),
       seed=st.integers(0, 99), epoch=st.integers(0, 5), data_=st.data())
def test_sampler_properties(n, ws, min_len, seed, epoch, data_):
    """For any shape of run: ranks get equal shares that cover every index; a resumed epoch is
    exactly the tail of the uninterrupted one."""
    ranks = [ResumableSampler(n, True, seed, r, ws, min_len=min_len, tag_epoch=True) for r in range(ws)]
    for s in ranks:
        s.set_epoch(epoch)
    full = [list(s) for s in ranks]
    assert len({len(f) for f in full}) == 1 and len(full[0]) == len(ranks[0])
    assert {i for f in full for _, _, i in f} == set(range(n))
    assert sum(len(f) for f in full) >= max(n, min_len)
    r = data_.draw(st.integers(0, ws - 1))
    k = data_.draw(st.integers(0, len(full[r])))
    ranks[r].set_start(k)
    assert len(ranks[r]) == len(full[r]) - k and list(ranks[r]) == full[r][k:]
