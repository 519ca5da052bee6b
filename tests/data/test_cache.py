"""cache.py: the decode-once uint8 cache - what it keeps and skips, its key, crash safety,
reuse without decoding, segmentation decoding, pickling for workers."""
import os
import pickle

import numpy as np
import pytest
from PIL import Image

import gan_colorize.data.cache as cache_mod
from conftest import BAD, GOOD, GRAY, build, colourful, dcfg
from gan_colorize.core.errors import UserError
from gan_colorize.data.splits import Record, list_split


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
    monkeypatch.setattr(cache_mod, "read_rgb", boom)
    monkeypatch.setattr(cache_mod, "_decode", boom)
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
    real = cache_mod._decode
    def flaky(*a):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*a)
    monkeypatch.setattr(cache_mod, "_decode", flaky)
    d = dcfg(tree, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        build(d)
    assert os.listdir(tmp_path / "cache") == []
    monkeypatch.setattr(cache_mod, "_decode", real)
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


def test_cache_pickles_without_pixels(sample_cache):
    sample_cache.image(0)  # opens the memmap
    blob = pickle.dumps(sample_cache)
    assert len(blob) < 20_000
    clone = pickle.loads(blob)
    assert np.array_equal(clone.image(3), sample_cache.image(3))


def test_segmentation_decoding():
    blue = np.zeros((4, 4, 3), np.uint8)
    blue[..., 2] = 254
    blue[1:3, 1:3] = (200, 40, 90)   # flower
    assert cache_mod._seg_foreground(blue, "segmim").sum() == 4
    tri = np.zeros((4, 4, 3), np.uint8)
    tri[0] = 128                      # gray border: not foreground
    tri[2:, 2:] = (128, 0, 0)         # labelled colour
    assert cache_mod._seg_foreground(tri, "trimap").sum() == 4
    gray_tri = np.zeros((4, 4, 3), np.uint8)
    gray_tri[0] = 128
    gray_tri[3] = 255
    assert cache_mod._seg_foreground(gray_tri, "trimap").tolist() == [[0] * 4] * 3 + [[1] * 4]


def test_broken_segmentation_only_loses_the_segmentation(f17_with_segs, tmp_path):
    (f17_with_segs / "trimaps" / "image_0002.png").write_bytes(b"broken")
    cache, _ = build(dcfg(f17_with_segs, tmp_path, name="flowers17", size=32))
    assert len(cache) == 4 and cache.has_seg.tolist() == [True, False, True, False]


def test_bsds_label_maps_cached(bsds_tree, tmp_path):
    """BSDS500 groundTruth .mat files become uint8 label maps, one channel per annotator,
    resized with the image (nearest); the image without a .mat has no segmentation."""
    from conftest import bsds_labels
    cache, msgs = build(dcfg(bsds_tree, tmp_path, name="bsds500", size=32), "test")
    assert msgs == [] and len(cache) == 4 and list(cache.has_seg) == [True, True, True, False]
    assert cache.segmentation(3) is None
    for i, (h, w, a) in enumerate([(48, 72, 3), (72, 48, 2), (48, 72, 3)]):
        seg = cache.segmentation(i)
        assert seg.dtype == np.uint8 and seg.shape == cache.shapes[i] + (a,)
        full = np.stack([bsds_labels(h, w, k) for k in range(a)], -1).astype(np.uint8)
        sh, sw = cache.shapes[i]
        ys, xs = (np.arange(sh) * h) // sh, (np.arange(sw) * w) // sw
        # nearest resize: every cached label is one of the source labels around that pixel
        assert (seg == full[ys][:, xs]).mean() > 0.9
        assert set(np.unique(seg[..., 0])) == {1, 2, 3, 4}
    again, _ = build(dcfg(bsds_tree, tmp_path, name="bsds500", size=32), "test")
    assert not again.built_now and np.array_equal(again.segmentation(1), cache.segmentation(1))


def test_bsds_reading_errors_and_many_labels(tmp_path):
    from conftest import write_ground_truth
    from gan_colorize.data.cache import read_bsds_labels
    from gan_colorize.core.imageio import BadImageError
    lab = (np.arange(40 * 30).reshape(40, 30) % 300 + 1).astype(np.uint16)   # 300 segments
    lab[:20] = 7                                                            # 7 is the largest
    write_ground_truth(tmp_path / "many.mat", [lab])
    out = read_bsds_labels(tmp_path / "many.mat")
    assert out.shape == (40, 30, 1) and out.dtype == np.uint8
    assert len(np.unique(out)) == 256 and (out[:20] == 1).all()   # 255 largest kept, 0 = the rest
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(BadImageError, match="cannot read segmentation .*bad.mat"):
        read_bsds_labels(tmp_path / "bad.mat")
    from scipy.io import savemat
    savemat(tmp_path / "other.mat", {"x": np.ones(3)})
    with pytest.raises(BadImageError, match="other.mat: .*groundTruth"):
        read_bsds_labels(tmp_path / "other.mat")
