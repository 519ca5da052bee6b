"""splits.py: the split rules of every source, listing without decoding, bad roots."""
import socket

import numpy as np
import pytest

from conftest import BAD, GOOD, GRAY, SHARED, build, dcfg
from gan_colorize.core.errors import UserError
from gan_colorize.data.splits import SAMPLE_FILES, list_split

SHARED_F17 = SHARED / "flowers17"


# ---------------------------------------------------------------------------------------------
# folder

def test_folder_listing(tree, tmp_path):
    keys = sorted(r.key for r in list_split(dcfg(tree, tmp_path), "train"))
    assert keys == sorted(GOOD + BAD + GRAY)  # .txt, hidden folder and dotfile are not listed


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
        assert [r.key for r in list_split(d, split)] == [f"skimage/{f}" for f in SAMPLE_FILES]
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


def test_flowers102(tmp_path, monkeypatch):
    from scipy.io import savemat

    from gan_colorize.data import splits
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

    def ids(d, split):
        return [int(r.key[10:15]) for r in list_split(d, split)]
    big = dcfg(root, tmp_path, name="flowers102", flowers102_split="train+test")
    assert ids(big, "train") == [1, 2, 5, 6, 7, 8]
    assert ids(big, "val") == ids(big, "test") == [3, 4]
    # images that repeat a Flowers17 one are left out of train (only), in both schemes
    monkeypatch.setattr(splits, "flowers102_duplicates", lambda: frozenset({2, 3, 6}))
    assert ids(big, "train") == [1, 5, 7, 8] and ids(big, "val") == [3, 4]
    assert ids(d, "train") == [1] and ids(d, "test") == [5, 6, 7, 8]


@pytest.mark.skipif(not SHARED_F17.is_dir(), reason="no ../shared/datasets/flowers17 here")
def test_real_flowers17(tmp_path):
    d = dcfg(SHARED_F17, tmp_path, name="flowers17", workers=2)
    sizes = {s: len(list_split(d, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 680, "val": 340, "test": 340}
    cache, msgs = build(d, "val")
    assert len(cache) + len(cache.low_colour) + len(cache.skipped) == 340 and cache.skipped == []


SHARED_F102 = SHARED / "flowers102"


@pytest.mark.skipif(not SHARED_F102.is_dir(), reason="no ../shared/datasets/flowers102 here")
def test_real_flowers102(tmp_path):
    """The real copy: the official .mat files byte for byte, the split sizes and labels, and our
    two schemes with the Flowers17 duplicates left out of train."""
    import hashlib

    from scipy.io import loadmat
    from test_datasets_scripts import flowers102 as script

    from gan_colorize.data.splits import flowers102_duplicates
    sums = dict(line.split()[::-1] for line in (SHARED_F102 / "MD5SUMS").read_text().splitlines())
    for name in ("imagelabels.mat", "setid.mat"):
        md5 = hashlib.md5((SHARED_F102 / name).read_bytes()).hexdigest()
        assert md5 == script.FILES[name] == sums[name], name   # the official files
    setid = {k: set(np.ravel(v).tolist()) for k, v in loadmat(SHARED_F102 / "setid.mat").items()
             if k in ("trnid", "valid", "tstid")}
    assert {k: len(v) for k, v in setid.items()} == {"trnid": 1020, "valid": 1020, "tstid": 6149}
    assert setid["trnid"] | setid["valid"] | setid["tstid"] == set(range(1, 8190))
    labels = np.ravel(loadmat(SHARED_F102 / "imagelabels.mat")["labels"])
    counts = np.bincount(labels, minlength=103)
    assert len(labels) == 8189 and labels.min() == 1 and labels.max() == 102
    assert counts[0] == 0 and counts[1:].min() == 40 and counts[1:].max() == 258
    assert all(np.bincount(labels[np.array(sorted(setid[k])) - 1], minlength=103)[1:].min() == 10
               for k in ("trnid", "valid"))             # 10 per class in train and in val

    dups = flowers102_duplicates()
    assert len(dups) == 563 and len(dups & setid["trnid"]) == 88 and len(dups & setid["tstid"]) == 386
    official = dcfg(SHARED_F102, tmp_path, name="flowers102")
    big = dcfg(SHARED_F102, tmp_path, name="flowers102", flowers102_split="train+test")
    sizes = {(d.flowers102_split, s): len(list_split(d, s)) for d in (official, big)
             for s in ("train", "val", "test")}
    assert sizes == {("official", "train"): 1020 - 88, ("official", "val"): 1020,
                     ("official", "test"): 6149, ("train+test", "train"): 7169 - 88 - 386,
                     ("train+test", "val"): 1020, ("train+test", "test"): 1020}
    train = {int(r.key[10:15]) for r in list_split(big, "train")}
    assert train == (setid["trnid"] | setid["tstid"]) - dups


# ---------------------------------------------------------------------------------------------
# bsds500

def test_bsds500_listing(bsds_tree, tmp_path):
    d = dcfg(bsds_tree, tmp_path, name="bsds500")
    test = list_split(d, "test")
    assert [r.key for r in test] == [f"images/test/{n}.jpg" for n in (100, 101, 102, 103)]
    assert [r.seg_kind for r in test] == ["bsds", "bsds", "bsds", None]
    assert test[0].seg_path.endswith("groundTruth/test/100.mat")
    with pytest.raises(UserError, match=r"no BSDS500 train images .*this copy has: test"):
        list_split(d, "train")


SHARED_BSDS = SHARED / "bsds500"


@pytest.mark.skipif(not SHARED_BSDS.is_dir(), reason="no ../shared/datasets/bsds500 here")
def test_real_bsds500(tmp_path):
    """The real copy: 200 test photos, each with 4-9 human annotations; object masks from them
    cover 5-70% of the evaluation crop."""
    from gan_colorize.data.cache import ImageCache
    from gan_colorize.data.dataset import MaskedImageDataset
    from gan_colorize.data.masks import MaskSampler
    d = dcfg(SHARED_BSDS, tmp_path, name="bsds500", size=64)
    test = list_split(d, "test")
    assert len(test) == 200 and all(r.seg_kind == "bsds" for r in test)
    listed = {line.split()[1] for line in (SHARED_BSDS / "MD5SUMS").read_text().splitlines()}
    assert {r.key for r in test} | {f"groundTruth/test/{r.key[12:-4]}.mat" for r in test} <= listed
    cache = ImageCache(d, "test", records=test[::20], progress=False)   # 10 photos: 1 s
    assert len(cache) == 10 and cache.has_seg.all()
    for i in range(10):
        h, w = cache.shapes[i]
        seg = cache.segmentation(i)
        assert min(h, w) == 74 and seg.shape[:2] == (h, w) and 4 <= seg.shape[2] <= 9
        assert (seg[..., 0] > 0).all()                   # every pixel is in some segment
    ds = MaskedImageDataset(cache, MaskSampler("segmentation:1"), 64, train=False)
    cov = [float(ds[i]["mask"].mean()) for i in range(10)]
    assert all(0.05 <= c <= 0.70 for c in cov), cov
