"""Tests for gan_colorize.masks: families, coverage promises, impa files, spec parsing, sampler,
file masks and the preview CLI."""
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from gan_colorize.core import specs as S
from gan_colorize.data import mask_families as F
from gan_colorize.data import masks as M
from gan_colorize.core.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMPA_DIR = os.path.join(ROOT, "masks", "impa")


def _image(h, w, seed=0):
    """A smooth-ish random uint8 (h, w, 3) photo stand-in for superpixels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), (x + y) % 97], -1)
    return np.clip(base + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)


def _seg(h, w):
    s = np.zeros((h, w), np.uint8)
    s[h // 4:3 * h // 4, w // 4:w // 2] = 1
    return s


def _save(tmp_path, name, arr):
    p = tmp_path / name
    Image.fromarray(arr).save(p)
    return str(p)


@pytest.fixture
def mask_png(tmp_path):
    a = np.zeros((20, 30), np.uint8)
    a[:, :10] = 255
    return _save(tmp_path, "m.png", a)


def draw(family, h, w, seed, arg=None, path=None):
    """One draw of `family` with every input it could need."""
    if family == "file":
        arg = path
    return F.FAMILIES[family](h, w, np.random.default_rng(seed), image=_image(h, w),
                              segmentation=_seg(h, w), arg=arg)


def assert_binary(m, h, w):
    assert isinstance(m, np.ndarray) and m.dtype == np.float32 and m.shape == (h, w)
    assert np.isin(m, (0.0, 1.0)).all()


# --------------------------------------------------------------------------------- families

def test_families_complete():
    want = {"impa", "stripes", "grid", "rect", "brush", "blobs", "superpixels", "regions", "segmentation",
            "full", "empty", "file"}
    assert set(F.FAMILIES) == want == set(F.COVERAGE)
    for lo, hi in (F.COVERAGE[f] for f in S.RANDOM_FAMILIES):
        assert 0.1 <= lo < hi <= 0.9


@pytest.mark.parametrize("family", list(F.FAMILIES))
@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (32, 96)])
def test_family_binary_shape(family, hw, mask_png):
    h, w = hw
    for seed in range(3):
        assert_binary(draw(family, h, w, seed, path=mask_png), h, w)


@pytest.mark.parametrize("family", list(F.FAMILIES))
def test_family_coverage(family, mask_png):
    lo, hi = F.COVERAGE[family]
    cov = np.array([draw(family, 64, 64, s, path=mask_png).mean() for s in range(50)])
    assert lo <= cov.min() and cov.max() <= hi, (cov.min(), cov.max())
    if family in S.RANDOM_FAMILIES:  # the range is used, not one value
        assert cov.std() > 0.02


@pytest.mark.parametrize("family", list(F.FAMILIES))
def test_family_reproducible(family, mask_png):
    a, b = draw(family, 48, 80, 7, path=mask_png), draw(family, 48, 80, 7, path=mask_png)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", S.RANDOM_FAMILIES + ("impa",))
def test_family_seed_dependent(family):
    masks = [draw(family, 64, 64, s) for s in range(6)]
    distinct = {m.tobytes() for m in masks}
    assert len(distinct) >= (6 if family in S.RANDOM_FAMILIES else 2)


def test_random_family_fallback_keeps_range():
    """A draw that always misses the range ends in the exact-coverage fallback, inside it."""
    always_full = F._within(0.2, 0.8)(lambda h, w, rng, **_: np.ones((h, w), bool))
    for s in range(5):
        m = always_full(64, 64, np.random.default_rng(s))
        assert_binary(m, 64, 64)
        assert 0.2 <= m.mean() <= 0.8
    for fam in S.RANDOM_FAMILIES:
        lo, hi = F.COVERAGE[fam]
        for s in range(5):
            assert lo <= F._sweep(8, 8, np.random.default_rng(s), lo, hi).mean() <= hi


def test_full_empty():
    assert (F.full(5, 7, None) == 1).all() and (F.empty(5, 7, None) == 0).all()


def test_superpixels_needs_image():
    with pytest.raises(UserError, match="superpixels"):
        F.superpixels(32, 32, np.random.default_rng(0), image=None)


def test_superpixels_flat_image():
    """Two flat regions (few distinct SLIC segments) still give a mask inside the range."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 255
    for s in range(5):
        m = F.superpixels(64, 64, np.random.default_rng(s), image=img)
        assert_binary(m, 64, 64)
        assert 0.2 <= m.mean() <= 0.8


def test_segmentation_family():
    seg = _seg(32, 32)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(F.segmentation(32, 32, rng, segmentation=seg), seg)
    np.testing.assert_array_equal(
        F.segmentation(32, 32, rng, segmentation=seg, arg="background"), 1 - seg)
    outs = {F.segmentation(32, 32, np.random.default_rng(s), segmentation=seg,
                           arg="random").tobytes() for s in range(20)}
    assert outs == {seg.astype(np.float32).tobytes(), (1 - seg).astype(np.float32).tobytes()}
    with pytest.raises(UserError, match="segmentation"):
        F.segmentation(32, 32, rng, segmentation=None)


def _is_union_of_segments(m, labels):
    """-> (annotator, segment ids) when mask m is exactly a union of segments of one annotator."""
    for a in range(labels.shape[2]):
        ids = np.unique(labels[..., a][m > 0])
        if np.array_equal(m > 0, np.isin(labels[..., a], ids)):
            return a, ids
    return None


def test_segmentation_family_object_masks():
    """Label maps (h, w, A) of human annotations: 1-3 segments of one annotation, 5-70% of the
    crop, a function of the rng; inverted by 'background'."""
    from conftest import bsds_labels
    labels = np.stack([bsds_labels(48, 64, k) for k in range(3)], -1).astype(np.uint8)
    seen_ann, seen_n = set(), set()
    for s in range(60):
        m = F.segmentation(48, 64, np.random.default_rng(s), segmentation=labels)
        assert_binary(m, 48, 64)
        assert 0.05 <= m.mean() <= 0.70
        a, ids = _is_union_of_segments(m, labels)
        assert 1 <= len(ids) <= 3
        seen_ann.add(a)
        seen_n.add(len(ids))
        again = F.segmentation(48, 64, np.random.default_rng(s), segmentation=labels)
        assert np.array_equal(m, again)
    assert seen_ann == {0, 1, 2} and seen_n == {1, 2, 3}
    m = F.segmentation(48, 64, np.random.default_rng(0), segmentation=labels)
    inv = F.segmentation(48, 64, np.random.default_rng(0), segmentation=labels, arg="background")
    assert np.array_equal(inv, 1 - m)
    # a sampler reads them through the same family
    m, fam = M.MaskSampler("segmentation:1").sample(48, 64, np.random.default_rng(1), segmentation=labels)
    assert fam == "segmentation" and 0.05 <= m.mean() <= 0.70


def test_object_mask_edge_cases():
    rng = np.random.default_rng(0)
    # many small segments: only a union of 3 of them reaches 5%
    small = (np.arange(40 * 40).reshape(40, 40, 1) // 32 % 50 + 1).astype(np.uint8)
    for s in range(10):
        m = F.object_mask(small, np.random.default_rng(s))
        assert 0.05 <= m.mean() <= 0.70 and len(np.unique(small[m])) == 3
    # a crop inside one big region plus slivers: no union of 1-3 fits, the nearest segment wins
    one = np.ones((40, 40, 2), np.uint8)
    one[:, :1, 1] = 2                        # annotator 1: a 1-px sliver (2.5%) beside the region
    m = F.object_mask(one, rng)
    assert m.mean() == pytest.approx(0.025) and m[:, 0].all()
    assert F.object_mask(np.zeros((8, 8, 1), np.uint8), rng).sum() == 0
    with pytest.raises(ValueError, match="does not match"):
        F.segmentation(8, 8, rng, segmentation=np.ones((8, 9, 2), np.uint8))


# --------------------------------------------------------------------------------- impa

def test_impa_known_answers_4x4():
    L, R, T, B, VA, VB, HA, HB, CA, CB = F.impa_masks(4, 4)
    np.testing.assert_array_equal(L, [[1, 1, 0, 0]] * 4)
    np.testing.assert_array_equal(T, np.array([[1, 1, 0, 0]] * 4).T)
    np.testing.assert_array_equal(VA, [[1, 0, 1, 0]] * 4)
    np.testing.assert_array_equal(HA, np.array([[1, 0, 1, 0]] * 4).T)
    np.testing.assert_array_equal(CA, (np.add.outer(range(4), range(4)) % 2 == 0))
    for a, b in ((L, R), (T, B), (VA, VB), (HA, HB), (CA, CB)):
        np.testing.assert_array_equal(a + b, np.ones((4, 4)))


@pytest.mark.parametrize("hw", [(256, 256), (48, 80), (32, 96)])
def test_impa_exact_half(hw):
    ms = F.impa_masks(*hw)
    assert len(ms) == len(S.IMPA_NAMES) == 10
    assert len({m.tobytes() for m in ms}) == 10
    for k, m in enumerate(ms):
        assert_binary(m, *hw)
        assert m.mean() == 0.5, S.IMPA_NAMES[k]
    for a in range(0, 10, 2):
        np.testing.assert_array_equal(ms[a] + ms[a + 1], 1)


def test_impa_band_boundaries_integer():
    h, w = 32, 96  # bands of 24 columns / 8 rows exactly
    va = F.impa_mask(4, h, w)
    assert (va[:, :24] == 1).all() and (va[:, 24:48] == 0).all() and (va[:, 72:] == 0).all()
    ca = F.impa_mask(8, h, w)
    assert ca[0, 0] == 1 and ca[8, 0] == 0 and ca[0, 24] == 0 and ca[8, 24] == 1


def test_impa_pngs_match_generator():
    files = sorted(os.listdir(IMPA_DIR))
    assert files == [f"{k:02d}_{n}.png" for k, n in enumerate(S.IMPA_NAMES)]
    for f, m in zip(files, F.impa_masks(256, 256)):
        with Image.open(os.path.join(IMPA_DIR, f)) as im:
            assert im.mode == "L" and im.size == (256, 256)
            np.testing.assert_array_equal(np.asarray(im), (m * 255).astype(np.uint8))
        np.testing.assert_array_equal(F.load_mask_file(os.path.join(IMPA_DIR, f), 64, 64),
                                      F.impa_mask(int(f[:2]), 64, 64))


@pytest.mark.parametrize("arg,want", [
    (None, tuple(range(10))), ("3", (3,)), ("0-3", (0, 1, 2, 3)), ("0;2;5", (0, 2, 5)),
    ("0-1;8", (0, 1, 8)), (" 9 ; 9 ", (9,)), ("left;checker_b", (0, 9)),
])
def test_impa_arg(arg, want):
    assert S.parse_impa_arg(arg) == want


def test_impa_subset_draws():
    seen = {F.impa(16, 16, np.random.default_rng(s), arg="0;2;5").tobytes() for s in range(60)}
    assert seen == {F.impa_mask(k, 16, 16).tobytes() for k in (0, 2, 5)}


# --------------------------------------------------------------------------------- spec

@pytest.mark.parametrize("spec,want", [
    ("impa", [("impa", None, 1.0)]),
    ("impa:1,brush:1,blobs:0.5", [("impa", None, 1.0), ("brush", None, 1.0), ("blobs", None, 0.5)]),
    ("impa=0", [("impa", "0", 1.0)]),
    ("impa=0-3:2, rect", [("impa", "0-3", 2.0), ("rect", None, 1.0)]),
    ("impa=0;2;5:0.5", [("impa", "0;2;5", 0.5)]),
    ("file=a/b.png", [("file", "a/b.png", 1.0)]),
    ("file=C:/masks:1", [("file", "C:/masks", 1.0)]),
    ("segmentation=random:2,full:0", [("segmentation", "random", 2.0), ("full", None, 0.0)]),
    ("empty:1e-3", [("empty", None, 0.001)]),
])
def test_parse_spec_good(spec, want):
    assert [tuple(e) for e in S.parse_spec(spec)] == want


@pytest.mark.parametrize("spec,part", [
    ("", "empty mask spec"),
    ("   ", "empty mask spec"),
    ("brsh:1", "'brsh'"),
    ("impa:1,foo", "'foo'"),
    ("impa:x", "'x'"),
    ("impa:-1", "'-1'"),
    ("impa:nan", "'nan'"),
    ("impa:inf", "'inf'"),
    ("impa:0,full:0", "no positive weight"),
    ("impa,,brush", "empty entry #2"),
    ("impa,", "empty entry #2"),
    ("impa=10", "'10'"),
    ("impa=3-1", "'3-1'"),
    ("impa=-1", "'-1'"),
    ("impa=0;x", "'x'"),
    ("impa=", "empty argument"),
    ("file", "file=PATH"),
    ("brush=3", "takes no argument"),
    ("segmentation=inside", "'inside'"),
    ("file=C:/masks", "'/masks'"),  # ':' in a path needs an explicit weight
])
def test_parse_spec_bad(spec, part):
    with pytest.raises(S.MaskSpecError) as ei:
        S.parse_spec(spec)
    msg = str(ei.value)
    assert part in msg and "\n" not in msg
    assert isinstance(ei.value, UserError)


def test_parse_spec_not_a_string():
    with pytest.raises(S.MaskSpecError):
        S.parse_spec(None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("impa=:,;-0123456789.e brushfilx\n\x00é")) |
               st.characters(), max_size=30))
def test_parse_spec_fuzz(spec):
    try:
        entries = S.parse_spec(spec)
    except S.MaskSpecError as e:
        assert "\n" not in str(e)
        return
    assert entries and all(e.family in F.FAMILIES and e.weight >= 0 for e in entries)
    assert sum(e.weight for e in entries) > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(family=st.sampled_from(sorted(set(F.FAMILIES) - {"file"})),
       h=st.integers(8, 96), w=st.integers(8, 96), seed=st.integers(0, 2**32 - 1))
def test_family_any_size_fuzz(family, h, w, seed):
    m = draw(family, h, w, seed)
    assert_binary(m, h, w)
    lo, hi = F.COVERAGE[family]
    if family in S.RANDOM_FAMILIES:
        assert lo <= m.mean() <= hi


# --------------------------------------------------------------------------------- sampler

def test_sampler_weights():
    s = M.MaskSampler("full:1,empty:3")
    rng = np.random.default_rng(0)
    fams = [s.sample(8, 8, rng)[1] for _ in range(400)]
    frac = fams.count("full") / 400
    assert 0.19 < frac < 0.31
    assert s.families == ["full", "empty"]


def test_sampler_zero_weight_never_drawn():
    s = M.MaskSampler("full:1,empty:0")
    rng = np.random.default_rng(1)
    assert all(s.sample(8, 8, rng)[1] == "full" for _ in range(50))
    assert [f for _, f in s.fixed_masks(8, 8)] == ["full"]


def test_sampler_properties(mask_png):
    s = M.MaskSampler("impa:1,brush:1,impa=0:1")
    assert s.families == ["impa", "brush"]
    assert not s.is_fixed and not s.needs_image and not s.needs_segmentation
    with pytest.raises(S.MaskSpecError, match="brush"):
        s.fixed_masks(8, 8)
    s = M.MaskSampler("superpixels,segmentation")
    assert s.needs_image and s.needs_segmentation
    s = M.MaskSampler(f"impa=0-1,full,empty,file={mask_png}")
    assert s.is_fixed
    fm = s.fixed_masks(16, 16)
    assert [f for _, f in fm] == ["impa", "impa", "full", "empty", "file"]
    np.testing.assert_array_equal(fm[0][0], F.impa_mask(0, 16, 16))
    for m, _ in fm:
        assert_binary(m, 16, 16)


def test_sampler_sample_reproducible():
    s = M.MaskSampler("impa,stripes,grid,rect,brush,blobs")
    a = [s.sample(32, 48, np.random.default_rng([3, i])) for i in range(10)]
    b = [s.sample(32, 48, np.random.default_rng([3, i])) for i in range(10)]
    for (ma, fa), (mb, fb) in zip(a, b):
        assert fa == fb
        np.testing.assert_array_equal(ma, mb)
        assert_binary(ma, 32, 48)


def test_sampler_missing_file(tmp_path):
    with pytest.raises(S.MaskSpecError, match="nope"):
        M.MaskSampler(f"file={tmp_path / 'nope'}")
    with pytest.raises(S.MaskSpecError, match="no .png"):
        M.MaskSampler(f"file={tmp_path}")


def test_mask_rng():
    s = M.MaskSampler("brush")
    m = lambda i: s.sample(32, 32, M.mask_rng(5, i))[0]
    np.testing.assert_array_equal(m(3), m(3))
    assert len({m(i).tobytes() for i in range(5)}) == 5
    assert not np.array_equal(s.sample(32, 32, M.mask_rng(6, 3))[0], m(3))


# --------------------------------------------------------------------------------- file masks

def test_load_mask_file_gray_resize(tmp_path):
    a = np.array([[0, 127], [128, 255]], np.uint8)  # binarise at 0.5: 127 -> 0, 128 -> 1
    p = _save(tmp_path, "g.png", a)
    np.testing.assert_array_equal(F.load_mask_file(p, 2, 2), [[0, 0], [1, 1]])
    big = F.load_mask_file(p, 4, 6)  # nearest: each source pixel becomes a 2x3 block
    np.testing.assert_array_equal(big, np.kron([[0, 0], [1, 1]], np.ones((2, 3))))
    assert_binary(big, 4, 6)


def test_load_mask_file_downscale_and_rgb(tmp_path, mask_png):
    m = F.load_mask_file(mask_png, 6, 9)  # 20x30 with the left third white
    np.testing.assert_array_equal(m, np.tile([1, 1, 1, 0, 0, 0, 0, 0, 0], (6, 1)))
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4] = (255, 255, 255)
    rgb[4:, :4] = (255, 0, 0)  # red: luma 0.3 -> 0
    p = _save(tmp_path, "rgb.png", rgb)
    want = np.zeros((8, 8))
    want[:4] = 1
    np.testing.assert_array_equal(F.load_mask_file(p, 8, 8), want)
    jpg = tmp_path / "j.jpg"
    Image.fromarray(np.full((16, 16), 250, np.uint8)).save(jpg)
    assert (F.load_mask_file(str(jpg), 8, 8) == 1).all()


def test_load_mask_file_unreadable(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(UserError, match="broken.png") as ei:
        F.load_mask_file(str(bad), 8, 8)
    assert "\n" not in str(ei.value)
    with pytest.raises(UserError, match="missing.png"):
        F.load_mask_file(str(tmp_path / "missing.png"), 8, 8)


def test_file_family_folder(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    for k in (0, 5, 8):
        Image.fromarray((F.impa_mask(k, 32, 32) * 255).astype(np.uint8)).save(d / f"{k}.png")
    (d / "notes.txt").write_text("ignored")
    seen = {F.file(16, 16, np.random.default_rng(s), arg=str(d)).tobytes() for s in range(40)}
    assert seen == {F.impa_mask(k, 16, 16).tobytes() for k in (0, 5, 8)}
    s = M.MaskSampler(f"file={d}")
    assert len(s.fixed_masks(16, 16)) == 3


def test_resolve_spec_turns_a_bare_path_into_file(tmp_path, monkeypatch):
    d = tmp_path / "my:masks"  # a ':' in the path must not be read as a weight
    d.mkdir()
    Image.fromarray((F.impa_mask(0, 8, 8) * 255).astype(np.uint8)).save(d / "left.png")
    assert S.resolve_spec(str(d)) == f"file={d}:1"
    assert S.resolve_spec(str(d / "left.png")) == f"file={d / 'left.png'}:1"
    assert M.MaskSampler(S.resolve_spec(str(d))).entries == [S.MaskEntry("file", str(d), 1.0)]
    monkeypatch.setenv("HOME", str(tmp_path))
    assert S.resolve_spec("~/my:masks") == "file=~/my:masks:1"
    assert len(M.MaskSampler(S.resolve_spec("~/my:masks")).fixed_masks(8, 8)) == 1
    for spec in ("impa:1,brush", "file=nope", str(tmp_path / "missing")):  # not a path: as it is
        assert S.resolve_spec(spec) == spec


def test_resize_nearest_by_pixel_centres():
    m = np.arange(4)[None].repeat(2, 0)                       # (2, 4): columns 0 1 2 3
    np.testing.assert_array_equal(F.resize_nearest(m, 2, 8), [[0, 0, 1, 1, 2, 2, 3, 3]] * 2)
    np.testing.assert_array_equal(F.resize_nearest(m, 1, 2), [[1, 3]])  # centres 1.0, 3.0 -> 1, 3
    np.testing.assert_array_equal(F.resize_nearest(m, 2, 3), [[0, 2, 3]] * 2)


def test_file_family_unreadable_in_folder(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match="x.png"):
        F.file(8, 8, np.random.default_rng(0), arg=str(d))


# --------------------------------------------------------------------------------- CLI

def test_preview_cli_main(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    rc = M.main(["preview", "--families", "impa,brush,superpixels,segmentation", "--out", str(out),
                 "--size", "32", "--n", "3"])
    assert rc == 0
    with Image.open(out) as im:
        size = im.size
    assert size[0] > 3 * 32 and size[1] >= 3 * 32  # three rows: segmentation skipped
    assert "segmentation" in capsys.readouterr().err


def test_preview_command_line_is_the_config_parser(tmp_path, capsys):
    """The mask preview on the one parser: the old flags are shorthands of the mask_preview
    section, `preview` the one command; bad input is one line naming the flag."""
    from gan_colorize.core.parser import MASK_PREVIEW, parse_commands
    name, cfg, _ = parse_commands(["preview", "--families", "impa", "--out", "x.png", "--size",
                                   "16", "--n=2", "--seed", "4"], {"preview": MASK_PREVIEW}, "m")
    p = cfg.mask_preview
    assert (name, p.families, p.out, p.size, p.n, p.seed) == ("preview", "impa", "x.png", 16, 2, 4)
    for argv, says in ((["preview", "--out", "x.png"], "mask_preview.families (--families): is required"),
                       (["preview", "--families", "impa", "--out", "x.png", "--n", "two"],
                        "mask_preview.n (--n): expected int"),
                       (["sheet"], "unknown command 'sheet'")):
        with pytest.raises(SystemExit) as exc:
            M.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error: ") and says in err, err
    with pytest.raises(SystemExit) as exc:
        M.main(["preview", "--help"])
    assert exc.value.code == 0 and "--mask_preview.size 128" in capsys.readouterr().out


def test_preview_cli_bad_spec_subprocess(tmp_path):
    r = subprocess.run([sys.executable, "-m", "gan_colorize.masks", "preview", "--families",
                        "impa,bogus", "--out", str(tmp_path / "x.png")],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "bogus" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
