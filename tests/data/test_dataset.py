"""data.py: MaskedImageDataset items, resumable sampling, loaders."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from PIL import Image

from conftest import GOOD, build, dcfg
from gan_colorize.core.imageio import resize_short
from gan_colorize.core.config import Config, EvalConfig, MaskConfig, TrainConfig
from gan_colorize.data.dataset import MaskedImageDataset, ResumableSampler, build_loader
from gan_colorize.data.hints import Hints
from gan_colorize.core.errors import UserError
from gan_colorize.data.masks import MaskSampler
from gan_colorize.data.mask_families import impa_mask


def full_cfg(d, train="impa:1,stripes:1,rect:1,brush:1", preview="impa:1,brush:1", pairing="random",
             batch_size=4, eval_batch_size=3):
    """A real Config around the DataConfig d (not validated: the loader trusts it as it is)."""
    return Config(data=d, masks=MaskConfig(train=train, preview=preview, pairing=pairing),
                  train=TrainConfig(seed=7, batch_size=batch_size),
                  eval=EvalConfig(seed=3, batch_size=eval_batch_size))


# ---------------------------------------------------------------------------------------------
# MaskedImageDataset

def test_items_shapes_and_determinism(sample_cache):
    sampler = MaskSampler("impa:1,brush:1,rect:1")
    for train in (True, False):
        ds = MaskedImageDataset(sample_cache, sampler, 64, train=train, seed=5)
        assert len(ds) == 5
        it = ds[(0, 0, 2)] if train else ds[2]
        assert it["rgb"].shape == (3, 64, 64) and it["rgb"].dtype == torch.uint8
        assert it["mask"].shape == (1, 64, 64) and it["mask"].dtype == torch.float32
        assert set(torch.unique(it["mask"]).tolist()) <= {0.0, 1.0}
        assert it["family"].dtype == torch.int64 and 0 <= int(it["family"]) < 3
        assert it["index"].dtype == torch.int64 and int(it["index"]) == 2
        again = ds[(0, 0, 2)] if train else ds[2]
        assert torch.equal(it["rgb"], again["rgb"]) and torch.equal(it["mask"], again["mask"])
    ds = MaskedImageDataset(sample_cache, sampler, 64, train=True, seed=5)
    views = [ds[(e, 0, 2)]["rgb"] for e in range(4)]
    assert not all(torch.equal(views[0], v) for v in views[1:])  # epochs give new crops
    with pytest.raises(IndexError):
        ds[5]


def test_eval_view_is_centre_crop(sample_cache):
    ds = MaskedImageDataset(sample_cache, MaskSampler("full"), 64, train=False)
    i = sample_cache.keys.index("skimage/chelsea.png")
    img = resize_short(sample_cache.image(i), 64)
    x0 = (img.shape[1] - 64) // 2
    assert np.array_equal(ds[i]["rgb"].numpy().transpose(1, 2, 0), img[:, x0:x0 + 64])
    assert ds[i]["mask"].sum() == 64 * 64


def test_eval_masks_follow_mask_rng(sample_cache):
    from gan_colorize.data.masks import mask_rng
    sampler = MaskSampler("brush:1,rect:1")
    ds = MaskedImageDataset(sample_cache, sampler, 64, train=False, seed=11)
    for i in range(5):
        img = ds[i]["rgb"].numpy().transpose(1, 2, 0)
        m, fam = sampler.sample(64, 64, mask_rng(11, i), image=img)
        assert np.array_equal(ds[i]["mask"][0].numpy(), m)
        assert int(ds[i]["family"]) == sampler.families.index(fam)


def test_pairing_all(sample_cache):
    ds = MaskedImageDataset(sample_cache, MaskSampler("impa:1,full:1"), 64, train=False, pairing="all")
    assert ds.n_masks == 11 and len(ds) == 5 * 11
    for i in (0, 10, 11, 23, 54):
        it = ds[i]
        k = i % 11
        expect = impa_mask(k, 64, 64) if k < 10 else np.ones((64, 64), np.float32)
        assert np.array_equal(it["mask"][0].numpy(), expect)
        assert int(it["family"]) == (0 if k < 10 else 1)
        assert torch.equal(it["rgb"], ds[(i // 11) * 11]["rgb"])  # same image across its masks


def test_eval_deals_out_mask_files_in_order(sample_cache, tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    left = np.zeros((16, 16), np.uint8)
    left[:, :8] = 255
    for name, m in (("0_full.png", np.full((16, 16), 255, np.uint8)),
                    ("1_empty.png", np.zeros((16, 16), np.uint8)), ("2_left.png", left)):
        Image.fromarray(m).save(folder / name)
    dealt = [1, 0, 0.5, 1, 0]  # item i: file i % 3, sorted
    for spec in (f"file={folder}", f"file={folder}:1"):
        ds = MaskedImageDataset(sample_cache, MaskSampler(spec), 64, train=False, seed=4)
        assert len(ds) == 5 and ds.n_masks == 1
        assert [float(ds[i]["mask"].mean()) for i in range(5)] == dealt
        assert {int(ds[i]["family"]) for i in range(5)} == {0}
    train = MaskedImageDataset(sample_cache, MaskSampler(f"file={folder}"), 64, train=True, seed=4)
    drawn = [float(train[(0, p, p % 5)]["mask"].mean()) for p in range(15)]
    assert drawn != dealt * 3 and set(drawn) == {0, 0.5, 1}  # training draws a file per item
    mixed = MaskedImageDataset(sample_cache, MaskSampler(f"file={folder},full:1"), 64, train=False)
    assert mixed.fixed is None  # a mixture is drawn, as every other spec


def test_segmentations_cached_and_aligned(f17_with_segs, tmp_path):
    d = dcfg(f17_with_segs, tmp_path, name="flowers17", size=32)
    cache, _ = build(d)
    assert cache.has_seg.tolist() == [True, True, True, False]
    seg = cache.segmentation(0)
    assert seg.shape == cache.shapes[0] and set(np.unique(seg)) == {0, 1}
    for train in (True, False):
        ds = MaskedImageDataset(cache, MaskSampler("segmentation"), 32, train=train, seed=1)
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
        MaskedImageDataset(no_segs, MaskSampler("segmentation"), 32, train=False)


def test_label_maps_follow_crops_and_flips(bsds_tree, tmp_path):
    """BSDS500's label maps (h, w, A) reach the mask family cropped, resized and flipped with the
    image: annotation 0 of the fixture is quadrants, segments 1 and 3 the left half, where the
    photo (colourful: red grows to the right) is least red."""
    cache, _ = build(dcfg(bsds_tree, tmp_path, name="bsds500", size=32), "test")

    class LeftHalf(MaskSampler):
        def sample(self, h, w, rng, image=None, segmentation=None):
            assert segmentation.shape[:2] == (h, w) and segmentation.shape[2] in (2, 3)
            return np.isin(segmentation[..., 0], (1, 3)).astype(np.float32), "segmentation"

    for train in (True, False):
        ds = MaskedImageDataset(cache, LeftHalf("segmentation"), 32, train=train, seed=1)
        assert len(ds) == 3  # the photo without a .mat is left out
        for key in [(e, p, p % 3) for e in range(4) for p in range(3)] if train else range(3):
            item = ds[key]
            m = item["mask"][0].numpy() > 0.5
            red = item["rgb"][0].numpy().astype(float)
            if m.any() and (~m).any():
                assert red[m].mean() < red[~m].mean() - 20, key
    ds = MaskedImageDataset(cache, MaskSampler("segmentation"), 32, train=False)
    assert all(0.05 <= float(ds[i]["mask"].mean()) <= 0.70 for i in range(3))


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


# ---------------------------------------------------------------------------------------------
# loaders

def _collect(loader):
    return [{k: v.to(copy=True) if isinstance(v, Hints) else v.clone() for k, v in b.items()}
            for b in loader]


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
    cfg = full_cfg(dcfg("", tmp_path, name="samples", size=32), preview=str(masks), pairing="all",
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
    # evaluation's case: a bare folder, pairing=random -> item i gets file i % 2
    cfg.masks.pairing = "random"
    loader, _ = build_loader(cfg, "test", train=False, mask_spec=str(masks))
    ms = _cat(_collect(loader), "mask")
    assert len(ms) == 5 and all(ms[i, 0, :, :16].eq(1 - i % 2).all() for i in range(5))
    assert all(ms[i, 0, :, 16:].eq(i % 2).all() for i in range(5))


# ---------------------------------------------------------------------------------------------
# colour hints in training items (hints.enabled)

def test_training_items_carry_hints_inside_their_mask_drawn_from_their_seed(tmp_path):
    cfg = full_cfg(dcfg("", tmp_path, name="samples", size=64), train="impa:1,brush:1,rect:1",
                   batch_size=2)
    cfg.hints.enabled = True
    loader, sampler = build_loader(cfg, "train", train=True)
    sampler.set_epoch(0)
    first = _collect(loader)
    sampler.set_epoch(0)
    assert all(type(a["hints"]) is Hints for a in first)            # one hint set per batch
    assert all(torch.equal(a["hints"][k], b["hints"][k]) for a, b in zip(first, _collect(loader))
               for k in (0, 1))                                      # reproducible
    hint_ab = torch.cat([b["hints"].ab for b in first])
    hint_mask, mask = torch.cat([b["hints"].mask for b in first]), _cat(first, "mask")
    assert hint_mask.shape == mask.shape and hint_ab.shape == (mask.shape[0], 2, 64, 64)
    assert (hint_mask <= mask).all()                               # never outside the mask
    assert (hint_ab.abs().sum(1, keepdim=True)[hint_mask == 0] == 0).all()
    assert hint_mask.sum() > 0
    cfg.hints.enabled = False
    plain, _ = build_loader(cfg, "train", train=True)
    assert "hints" not in next(iter(plain))
