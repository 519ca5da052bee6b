"""Tests for gan_colorize.hints: reproducible draws, the count law, the mask law, patch sides and
colours, user hints (arrays, points, files) with known Lab values, resizing that keeps every hint,
drop_outside and draw_hints."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from gan_colorize.data import hints as H
from gan_colorize.core.errors import UserError
from gan_colorize.data.masks import mask_rng

EIGHT = np.ones((3, 3), bool)  # 8-connectivity


def _ab(h, w, seed=0):
    """Random true ab (2,h,w) in model units."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, h, w, generator=g) * 2 - 1


def _mask(h, w, kind):
    m = torch.zeros(1, h, w)
    if kind == "full":
        m[:] = 1
    elif kind == "left":
        m[..., : w // 2] = 1
    elif kind == "checker":
        m[0] = torch.from_numpy(((np.arange(h)[:, None] + np.arange(w)[None]) % 2).astype(np.float32))
    elif kind == "pixel":  # one pixel in a corner: every patch is clipped to it
        m[0, 0, w - 1] = 1
    elif kind == "border_row":
        m[0, h - 1, :] = 1
    elif kind == "random":
        m[0] = torch.from_numpy(np.random.default_rng(1).random((h, w)) < 0.3).float()
    return m


def _interior_side(hint_mask):
    """Side of a single square hint that does not touch the image border (so it was not
    clipped), or None if it touches the border."""
    h, w = hint_mask.shape[-2:]
    rows, cols = np.nonzero(hint_mask[0].numpy())
    if rows.min() == 0 or cols.min() == 0 or rows.max() == h - 1 or cols.max() == w - 1:
        return None
    side = rows.max() - rows.min() + 1
    assert side == cols.max() - cols.min() + 1 and len(rows) == side * side  # a full square
    return int(side)


# ---------------------------------------------------------------------------------------------
# seeds and determinism

def test_hint_rng_reproducible_and_independent_of_mask_rng():
    draw = lambda g: g.integers(0, 2**31, size=8).tolist()  # noqa: E731
    assert draw(H.hint_rng(3, 5)) == draw(H.hint_rng(3, 5))
    others = [H.hint_rng(3, 6), H.hint_rng(4, 5), mask_rng(3, 5),
              np.random.default_rng([3, 5, 0, 0]), np.random.default_rng([3, 5, 0, 0, 0])]
    assert all(draw(g) != draw(H.hint_rng(3, 5)) for g in others)


@pytest.mark.parametrize("fn", ["sample", "fixed"])
def test_same_seed_same_hints(fn):
    ab, m = _ab(64, 64), _mask(64, 64, "full")
    draw = (lambda rng: H.sample_hints(ab, m, rng, p=0.05)) if fn == "sample" else \
        (lambda rng: H.fixed_hints(ab, m, rng, 10))
    a, b, c = draw(H.hint_rng(0, 7)), draw(H.hint_rng(0, 7)), draw(H.hint_rng(0, 8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


# ---------------------------------------------------------------------------------------------
# the count law

@pytest.mark.parametrize("p", [1 / 8, 1 / 3])
def test_count_is_geometric_from_zero(p):
    """1-px hints on a full 64x64 mask: the hinted pixel count is the hint count (collisions are
    ~0.5% of images at mean 7). N = geometric(p) - 1: P(0) = p, E[N] = (1-p)/p; forgetting the -1
    gives P(0) = 0 and a mean 1 higher, both far outside these bounds (>3.5 standard errors)."""
    ab, m = _ab(64, 64), _mask(64, 64, "full")
    rng = np.random.default_rng(12345)
    n = np.array([H.sample_hints(ab, m, rng, p=p, size=1)[1].sum().item() for _ in range(3000)])
    assert abs((n == 0).mean() - p) < 0.03
    assert abs(n.mean() - (1 - p) / p) < 0.5
    assert n.max() <= H.MAX_COUNT


def test_count_is_capped():
    ab, m = _ab(64, 64), _mask(64, 64, "full")
    rng = np.random.default_rng(0)
    n = [H.sample_hints(ab, m, rng, p=0.01, size=1, max_count=3)[1].sum().item() for _ in range(50)]
    assert max(n) == 3 and min(n) >= 0


def test_fixed_count_is_exact():
    ab, m = _ab(256, 256), _mask(256, 256, "full")
    for i in range(5):
        _, hm = H.fixed_hints(ab, m, H.hint_rng(0, i), 6, side=1)
        assert hm.sum().item() == 6  # 1-px patches on 65536 px: no collisions at this seed
        assert ndimage.label(hm[0].numpy(), EIGHT)[1] <= 6


# ---------------------------------------------------------------------------------------------
# the mask law

@pytest.mark.parametrize("kind", ["left", "checker", "pixel", "border_row", "random"])
@pytest.mark.parametrize("size", [64, 256])
def test_never_outside_mask(kind, size):
    ab, m = _ab(size, size), _mask(size, size, kind)
    for i in range(12):
        for ha, hm in (H.sample_hints(ab, m, H.hint_rng(1, i), p=0.1),
                       H.fixed_hints(ab, m, H.hint_rng(2, i), 10, side=9)):
            assert ha.shape == (2, size, size) and hm.shape == (1, size, size)
            assert ha.dtype == hm.dtype == torch.float32
            assert set(hm.unique().tolist()) <= {0.0, 1.0}
            assert (hm * (1 - m)).sum() == 0
            assert (ha * (1 - hm)).abs().sum() == 0  # no colour off the hints
    assert hm.sum() > 0  # the test would see a hint if one leaked


def test_empty_mask_gets_no_hints():
    ab, m = _ab(64, 64), _mask(64, 64, "empty")
    for i in range(20):
        for ha, hm in (H.sample_hints(ab, m, H.hint_rng(0, i), p=0.01),
                       H.fixed_hints(ab, m, H.hint_rng(0, i), 50)):
            assert hm.sum() == 0 and ha.abs().sum() == 0


# ---------------------------------------------------------------------------------------------
# patch sides and colours

@pytest.mark.parametrize("h, w, lo, hi", [(64, 64, 1, 2), (256, 256, 1, 9), (512, 512, 2, 18),
                                          (256, 512, 1, 9), (32, 32, 1, 1)])
def test_training_side_range_scales_with_size(h, w, lo, hi):
    """Single hints (a tiny p always hits max_count=1) on a full mask: the unclipped sides seen
    are exactly lo..hi, every one of them."""
    assert (H.scaled_side(1, h, w), H.scaled_side(9, h, w)) == (lo, hi)
    ab, m = _ab(h, w), torch.ones(1, h, w)
    rng = np.random.default_rng(0)
    sides = {_interior_side(H.sample_hints(ab, m, rng, p=1e-9, max_count=1)[1])
             for _ in range(25 * (hi - lo + 1))} - {None}
    assert sides == set(range(lo, hi + 1))


@pytest.mark.parametrize("n, side, want", [(256, 5, 5), (64, 5, 1), (512, 5, 10), (1024, 5, 20),
                                           (128, 9, 5), (256, 1, 1), (16, 9, 1)])
def test_fixed_side_scales(n, side, want):
    assert H.scaled_side(side, n, n) == want
    ab, m = _ab(n, n), torch.ones(1, n, n)
    sides = {_interior_side(H.fixed_hints(ab, m, H.hint_rng(0, i), 1, side)[1]) for i in range(5)}
    assert sides - {None} == {want}


def test_colour_is_patch_mean_known_answer():
    """ab = (column, row) / 1000 on a full mask: a rectangular patch's mean is its centre's
    value, ((c0 + c1) / 2, (r0 + r1) / 2) / 1000, also when the image border clips it."""
    n = 256
    yy, xx = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    ab = torch.stack([xx, yy]).float() / 1000
    for i in range(8):
        ha, hm = H.fixed_hints(ab, torch.ones(1, n, n), H.hint_rng(0, i), 1, side=9)
        rows, cols = np.nonzero(hm[0].numpy())
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        assert len(rows) == (r1 - r0 + 1) * (c1 - c0 + 1) and r1 - r0 + 1 <= 9
        want = torch.tensor([[c0 + c1], [r0 + r1]]) / 2000
        assert torch.allclose(ha[:, rows, cols], want.float(), atol=1e-6)


def test_colour_is_mean_over_patch_pixels_inside_mask():
    """Checkerboard mask: each patch covers pixels of both colours of the board; its colour must
    be the mean over its inside pixels only (the checker has ab = +1 inside, -1 outside)."""
    n = 256
    m = _mask(n, n, "checker")
    ab = (2 * m - 1).repeat(2, 1, 1) * torch.tensor([0.5, -0.25]).view(2, 1, 1)
    ab = ab + _ab(n, n) * 0.01 * m  # some variation inside, so the mean is not trivial
    for i in range(10):
        ha, hm = H.fixed_hints(ab, m, H.hint_rng(5, i), 1, side=9)
        on = hm[0] > 0
        assert on.sum() > 1
        assert torch.allclose(ha[:, on], ab[:, on].double().mean(1, keepdim=True).float(), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# user hints: arrays, points, files

# (r, g, b) -> Lab (a, b), from skimage.color.rgb2lab
KNOWN = [((255, 0, 0), (80.0925, 67.2032)), ((0, 255, 0), (-86.1827, 83.1793)),
         ((0, 0, 255), (79.1875, -107.8602)), ((255, 255, 255), (0.0, 0.0)),
         ((128, 128, 128), (0.0, 0.0))]


def _lab_ab(hint_ab, y, x):
    return (hint_ab[:, y, x] * 110).tolist()


def test_rgba_known_lab_and_alpha_threshold():
    rgba = np.zeros((3, 5, 4), np.uint8)
    for i, (rgb, _) in enumerate(KNOWN):
        rgba[0, i] = (*rgb, 255)
    rgba[1, 0] = (255, 0, 0, 128)  # just opaque enough
    rgba[1, 1] = (255, 0, 0, 127)  # just too transparent
    rgba[2, 2] = (0, 255, 0, 0)
    ha, hm = H.hints_from_rgba(rgba)
    assert ha.shape == (2, 3, 5) and hm.shape == (1, 3, 5) and ha.dtype == hm.dtype == torch.float32
    want = np.zeros((3, 5))
    want[0, :] = 1
    want[1, 0] = 1
    assert np.array_equal(hm[0].numpy(), want)
    for i, (_, ab) in enumerate(KNOWN):
        assert _lab_ab(ha, 0, i) == pytest.approx(ab, abs=0.01)
    assert _lab_ab(ha, 1, 0) == pytest.approx(KNOWN[0][1], abs=0.01)
    assert (ha * (1 - hm)).abs().sum() == 0


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4, 4, 3), np.uint8), r"shape \(H,W,4\)"),
    (np.zeros((4, 4), np.uint8), r"shape \(H,W,4\)"),
    (np.zeros((0, 4, 4), np.uint8), r"shape \(H,W,4\)"),
    (np.zeros((4, 4, 4), np.float32), "must be uint8"),
    ([[[0, 0, 0, 255]]], "numpy array"),
])
def test_rgba_bad_input(bad, match):
    with pytest.raises(UserError, match=match) as e:
        H.hints_from_rgba(bad)
    assert "\n" not in str(e.value)


def test_points_known_squares_and_colours():
    pts = [(1, 2, (255, 0, 0), 1),          # one pixel
           (6, 5, (0, 0, 255), 3),          # 3x3 centred on (5, 6)
           (0, 0, (0, 255, 0), 4),          # 4x4 at the corner: rows/cols -2..1 clipped to 0..1
           (7, 5, (255, 0, 0), 1.0)]        # a whole float; paints over the blue square
    ha, hm = H.hints_from_points(pts, 8, 9)
    want = np.zeros((8, 9), bool)
    want[2, 1] = True
    want[4:7, 5:8] = True
    want[0:2, 0:2] = True
    assert np.array_equal(hm[0].numpy() > 0, want)
    assert _lab_ab(ha, 2, 1) == pytest.approx(KNOWN[0][1], abs=0.01)
    assert _lab_ab(ha, 4, 5) == pytest.approx(KNOWN[2][1], abs=0.01)
    assert _lab_ab(ha, 5, 7) == pytest.approx(KNOWN[0][1], abs=0.01)  # later point wins
    assert _lab_ab(ha, 1, 1) == pytest.approx(KNOWN[1][1], abs=0.01)
    assert H.hints_from_points([], 4, 4)[1].sum() == 0


@pytest.mark.parametrize("pt, match", [
    ((9, 0, (0, 0, 0), 1), "outside the 9x8 image"),
    ((0, 8, (0, 0, 0), 1), "outside the 9x8 image"),
    ((-1, 0, (0, 0, 0), 1), "outside"),
    ((0.5, 0, (0, 0, 0), 1), "x must be a whole number"),
    (("a", 0, (0, 0, 0), 1), "x must be a whole number"),
    ((0, True, (0, 0, 0), 1), "y must be a whole number"),
    ((0, 0, (256, 0, 0), 1), "0..255"),
    ((0, 0, (0, -1, 0), 1), "0..255"),
    ((0, 0, (0.5, 0.5, 0.5), 1), "colour value must be a whole number"),
    ((0, 0, (0, 0), 1), r"colour must be \(r, g, b\)"),
    ((0, 0, "red", 1), r"colour must be \(r, g, b\)"),
    ((0, 0, (0, 0, 0), 0), "size must be >= 1"),
    ((0, 0, (0, 0, 0), float("nan")), "size must be a whole number"),
    ((0, 0, (0, 0, 0)), r"expected \(x, y, \(r, g, b\), size\)"),
    (5, r"expected \(x, y, \(r, g, b\), size\)"),
])
def test_points_bad_input(pt, match):
    with pytest.raises(UserError, match=match) as e:
        H.hints_from_points([(1, 1, (1, 2, 3), 1), pt], 8, 9)
    assert "\n" not in str(e.value) and str(e.value).startswith("hint 1:")


def _save(tmp_path, name, arr_or_im, **kw):
    p = tmp_path / name
    im = arr_or_im if isinstance(arr_or_im, Image.Image) else Image.fromarray(arr_or_im)
    im.save(p, **kw)
    return str(p)


def _rgba(h, w, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    a[..., 3] = np.where(rng.random((h, w)) < 0.2, 255, 0)
    return a


def test_load_hints_same_size_equals_array(tmp_path):
    a = _rgba(12, 10)
    ha, hm = H.load_hints(_save(tmp_path, "h.png", a), 12, 10)
    ra, rm = H.hints_from_rgba(a)
    assert torch.equal(hm, rm) and torch.equal(ha, ra)


def test_load_hints_enlarges_nearest(tmp_path):
    a = _rgba(3, 4, seed=1)
    ha, hm = H.load_hints(_save(tmp_path, "h.png", a), 6, 8)
    ra, rm = H.hints_from_rgba(a)
    up = lambda t: t.repeat_interleave(2, 1).repeat_interleave(2, 2)  # noqa: E731
    assert torch.equal(hm, up(rm)) and torch.allclose(ha, up(ra))


def test_load_hints_shrinks_keeping_a_one_pixel_hint(tmp_path):
    a = np.zeros((512, 512, 4), np.uint8)
    a[301, 77] = (255, 0, 0, 255)
    ha, hm = H.load_hints(_save(tmp_path, "h.png", a), 64, 64)
    assert hm.sum() == 1 and hm[0, 301 // 8, 77 // 8] == 1
    assert _lab_ab(ha, 301 // 8, 77 // 8) == pytest.approx(KNOWN[0][1], abs=0.01)


@pytest.mark.parametrize("mode", ["LA", "P"])
def test_load_hints_other_alpha_modes(tmp_path, mode):
    """Gray+alpha gives gray hints (ab 0); a palette with tRNS transparency works too."""
    if mode == "LA":
        im = Image.fromarray(np.stack([np.full((4, 4), 90, np.uint8),
                                       np.eye(4, dtype=np.uint8) * 255], -1), "LA")
        ha, hm = H.load_hints(_save(tmp_path, "la.png", im), 4, 4)
        assert np.array_equal(hm[0].numpy(), np.eye(4)) and ha.abs().max() < 1e-4
    else:
        im = Image.fromarray(np.eye(4, dtype=np.uint8), "P")
        im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        ha, hm = H.load_hints(_save(tmp_path, "p.png", im, transparency=0), 4, 4)
        assert np.array_equal(hm[0].numpy(), np.eye(4))
        assert _lab_ab(ha, 2, 2) == pytest.approx(KNOWN[0][1], abs=0.01)


def _bad_file(tmp_path, kind):
    rgb = np.full((16, 16, 3), 200, np.uint8)
    if kind == "jpeg":
        return _save(tmp_path, "photo.jpg", rgb), "no alpha channel"
    if kind == "rgb_png":
        return _save(tmp_path, "rgb.png", rgb), "no alpha channel"
    if kind == "truncated":
        full = tmp_path / "full.png"
        Image.fromarray(_rgba(64, 64)).save(full)
        p = tmp_path / "cut.png"
        p.write_bytes(full.read_bytes()[:200])
        return str(p), "truncated"
    if kind == "empty":
        p = tmp_path / "empty.png"
        p.write_bytes(b"")
        return str(p), "empty"
    if kind == "text":
        p = tmp_path / "notes.png"
        p.write_text("not an image\n" * 10)
        return str(p), "cannot identify image file"
    if kind == "missing":
        return str(tmp_path / "nope.png"), "no such file"
    if kind == "directory":
        return str(tmp_path), "is a directory"


@pytest.mark.parametrize("kind", ["jpeg", "rgb_png", "truncated", "empty", "text", "missing",
                                  "directory"])
def test_load_hints_bad_files_are_one_line_user_errors(tmp_path, kind):
    path, match = _bad_file(tmp_path, kind)
    with pytest.raises(UserError, match=match) as e:
        H.load_hints(path, 16, 16)
    msg = str(e.value)
    assert "\n" not in msg and path in msg and msg.startswith("cannot read hint file")


# ---------------------------------------------------------------------------------------------
# resize_hints

def _spots(n, count, side, seed=0, gap=40):
    """`count` square hints of `side` px with distinct colours, >= gap px apart, on an n x n
    image -> (hint_ab, hint_mask, list of (y0, x0, colour))."""
    rng = np.random.default_rng(seed)
    ha, hm, spots = torch.zeros(2, n, n), torch.zeros(1, n, n), []
    while len(spots) < count:
        y, x = rng.integers(0, n - side, 2)
        if all(max(abs(y - a), abs(x - b)) >= gap for a, b, _ in spots):
            c = torch.from_numpy(rng.uniform(-1, 1, 2).astype(np.float32))
            ha[:, y:y + side, x:x + side] = c[:, None, None]
            hm[:, y:y + side, x:x + side] = 1
            spots.append((y, x, c))
    return ha, hm, spots


def _cells(src, dst, k):
    """Target indices whose adaptive cell [floor(i S/d), ceil((i+1) S/d)) contains source k."""
    i = np.arange(dst)
    return i[(i * src // dst <= k) & (k < -((-(i + 1) * src) // dst))]


@pytest.mark.parametrize("src", [1024, 1000])
@pytest.mark.parametrize("side", [1, 3])
def test_every_hint_survives_downscale_with_its_colour(src, side):
    ha, hm, spots = _spots(src, 12, side)
    ra, rm = H.resize_hints(H.Hints(ha, hm), 64, 64)
    assert ra.shape == (2, 64, 64) and rm.shape == (1, 64, 64) and ra.dtype == torch.float32
    assert ndimage.label(rm[0].numpy(), EIGHT)[1] == len(spots)
    for y, x, c in spots:
        rows = np.unique(np.concatenate([_cells(src, 64, k) for k in range(y, y + side)]))
        cols = np.unique(np.concatenate([_cells(src, 64, k) for k in range(x, x + side)]))
        assert (rm[0][np.ix_(rows, cols)] == 1).all()
        got = ra[:, torch.from_numpy(rows)][:, :, torch.from_numpy(cols)].reshape(2, -1)
        assert torch.allclose(got, c[:, None].expand_as(got), atol=1e-6)
    assert (ra * (1 - rm)).abs().sum() == 0


def test_resize_merges_mean_colour_and_handles_batches_and_mixed_axes():
    ha, hm = torch.zeros(2, 2, 8, 8), torch.zeros(2, 1, 8, 8)  # a batch of 2; image 1 empty
    ha[0, :, 0, 0], hm[0, :, 0, 0] = torch.tensor([0.2, 0.4]), 1
    ha[0, :, 1, 1], hm[0, :, 1, 1] = torch.tensor([0.6, 0.0]), 1   # same 4x4 cell: merged
    ra, rm = H.resize_hints(H.Hints(ha, hm), 2, 2)
    assert ra.shape == (2, 2, 2, 2) and rm.shape == (2, 1, 2, 2)
    assert rm[0, 0].tolist() == [[1, 0], [0, 0]] and rm[1].sum() == 0
    assert ra[0, :, 0, 0].tolist() == pytest.approx([0.4, 0.2])
    # rows shrink 8 -> 2 while columns grow 8 -> 16 (nearest: each column doubles)
    ra, rm = H.resize_hints(H.Hints(ha[0], hm[0]), 2, 16)
    assert rm[0, 0].tolist() == [1, 1, 1, 1] + [0] * 12
    assert ra[:, 0, 0].tolist() == pytest.approx([0.2, 0.4])
    assert ra[:, 0, 2].tolist() == pytest.approx([0.6, 0.0])


def test_resize_same_size_is_identity():
    ha, hm, _ = _spots(64, 4, 3, gap=10)
    ra, rm = H.resize_hints(H.Hints(ha, hm), 64, 64)
    assert torch.equal(rm, hm) and torch.allclose(ra, ha)


# ---------------------------------------------------------------------------------------------
# drop_outside and draw_hints

def test_drop_outside_clips_pixels_and_counts_hints():
    ha, hm = torch.zeros(2, 10, 10), torch.zeros(1, 10, 10)
    ha[:] = 0.5
    for y, x in ((1, 1), (1, 7), (6, 3)):  # three 2x2 hints
        hm[0, y:y + 2, x:x + 2] = 1
    ha = ha * hm
    mask = torch.zeros(1, 10, 10)
    mask[0, :, :5] = 1           # left half: (1,1) inside, (1,7) outside
    mask[0, 6, 3:5] = 0          # (6,3) loses its top row
    (oa, om), n = H.drop_outside(H.Hints(ha, hm), mask)
    assert n == 2
    assert torch.equal(om, hm * mask) and torch.equal(oa, ha * mask)
    assert om.sum() == 4 + 2
    same, n = H.drop_outside(H.Hints(oa, om), mask)
    assert n == 0 and same.mask is om and same.ab is oa and type(same) is H.Hints


def test_draw_hints_ring():
    rgb = np.zeros((9, 9, 3), np.uint8)
    rgb[:, 5:] = 255                         # dark left, light right
    hm = torch.zeros(1, 9, 9)
    hm[0, 3:5, 3:5] = 1                      # a 2x2 hint
    fill = np.full((9, 9, 3), (10, 200, 30), np.uint8)
    before = rgb.copy()
    out = H.draw_hints(rgb, hm, fill)
    assert np.array_equal(rgb, before)      # the input is untouched
    ring = np.zeros((9, 9), bool)
    ring[2:6, 2:6] = True
    ring[3:5, 3:5] = False
    assert (out[3:5, 3:5] == (10, 200, 30)).all()
    assert (out[ring & (before[..., 0] == 0)] == 255).all()   # white on dark
    assert (out[ring & (before[..., 0] == 255)] == 0).all()   # black on light
    rest = ~ring
    rest[3:5, 3:5] = False
    assert np.array_equal(out[rest], before[rest])
    assert np.array_equal(H.draw_hints(rgb, hm[0].numpy())[3:5, 3:5], rgb[3:5, 3:5])
