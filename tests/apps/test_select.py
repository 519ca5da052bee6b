"""Click to select (apps/select.py): clicks -> a mask of the photo's regions, and `gan-colorize
--select`, which must give the same mask."""
import re

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

import gan_colorize
from gan_colorize.apps import colorize_cli
from gan_colorize.apps.select import (Segmentation, format_points, parse_points, segment_photo,
                                      select_mask)
from gan_colorize.core.errors import UserError
from conftest import hand_made_checkpoint

H, W = 96, 128


def _shapes():
    """A mid-gray photo with a dark disk (left) and a bright yellow rectangle (right), each a
    flat colour -> (rgb uint8 (H,W,3), disk bool, rectangle bool)."""
    rgb = np.full((H, W, 3), 128, np.uint8)
    disk = np.zeros((H, W), np.uint8)
    cv2.circle(disk, (35, 48), 22, 1, -1)
    disk = disk.astype(bool)
    rect = np.zeros((H, W), bool)
    rect[20:76, 75:115] = True
    rgb[disk] = (40, 30, 90)
    rgb[rect] = (240, 220, 60)
    return rgb, disk, rect


def _close(mask, shape):
    """mask is `shape`, up to its 1-px border (the lightness is smoothed before segmenting)."""
    inner = cv2.erode(shape.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    outer = cv2.dilate(shape.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return bool(mask[inner].all() and not mask[~outer].any())


@pytest.fixture(scope="module")
def shapes():
    rgb, disk, rect = _shapes()
    return rgb, disk, rect, segment_photo(rgb)


def test_one_click_selects_exactly_one_shape(shapes):
    rgb, disk, rect, seg = shapes
    m = select_mask(seg, [(35, 48)])
    assert m.dtype == bool and m.shape == (H, W)
    assert _close(m, disk)
    assert _close(select_mask(rgb, "95,50"), rect)            # the photo itself, a text point
    assert _close(select_mask(seg, "35,48;95,50"), disk | rect)


def test_removal_click_removes_the_region(shapes):
    _, disk, rect, seg = shapes
    assert not select_mask(seg, "35,48;-35,50").any()
    assert _close(select_mask(seg, [(35, 48), (95, 50), (100, 30, False)]), disk)
    start = np.ones((H, W), bool)                              # from a given mask
    assert _close(~select_mask(seg, "-95,50", mask=start), rect)


def test_a_removal_splits_the_coarse_region_it_falls_in():
    """Nested regions: a coarse level holds disk and rectangle as one region; after a removal
    click on the rectangle, an add click on the disk takes the finer region without it."""
    fine = np.zeros((H, W), np.int32)
    fine[:, W // 2:] = 1
    seg = Segmentation([fine, np.zeros((H, W), np.int32) + (np.arange(H)[:, None] >= H // 2)])
    top_left = (fine == 0) & (np.arange(H)[:, None] < H // 2)
    assert select_mask(seg, "10,10").sum() == (H // 2) * W              # coarsest first
    assert np.array_equal(select_mask(seg, "-100,10;10,10"), fine == 0)   # not the coarse row
    assert np.array_equal(select_mask(seg, "10,10;-100,10"), top_left)


def test_points_outside_are_one_line_errors(shapes):
    seg = shapes[3]
    for pts in ("128,10", "-5,96", [(-1, 5)], [(10, 96)]):
        with pytest.raises(UserError, match=r"^point -?\d+,\d+ is outside the photo \(128x96: "
                                            r"x in 0\.\.127, y in 0\.\.95\)$"):
            select_mask(seg, pts)
    for bad in ("12", "a,b", "1,2,3", ";"):
        with pytest.raises(UserError) as err:
            parse_points(bad)
        assert "\n" not in str(err.value)


def test_points_text_round_trips():
    pts = parse_points(" 3,4; -5,6 ;+7,8;")
    assert pts == [(3, 4, True), (5, 6, False), (7, 8, True)]
    assert parse_points(format_points(pts)) == pts and format_points(pts) == "3,4;-5,6;7,8"


def test_full_resolution_and_deterministic():
    photo = skimage.data.astronaut()[::2, ::3]                 # 256 x 171, odd width
    a = segment_photo(photo)
    b = segment_photo(photo)
    assert all(np.array_equal(x, y) for x, y in zip(a.levels, b.levels))
    m = select_mask(a, "60,40;120,200")
    assert m.shape == photo.shape[:2] and m.any()
    # a photo over max_pixels is segmented smaller; its labels still cover every pixel
    small = segment_photo(photo, max_pixels=10_000)
    assert all(lab.shape == photo.shape[:2] for lab in small.levels)
    assert select_mask(small, "60,40").shape == photo.shape[:2]


def test_a_shrunk_segmentation_still_follows_the_edges_at_full_resolution():
    """Segmented at 1/7 of the size, the labels are scaled up along the photo's edges: the
    selected disk is the disk to a pixel, where nearest neighbour would be off by up to 7."""
    rgb = np.full((672, 896, 3), 128, np.uint8)
    cv2.circle(rgb, (300, 330), 150, (40, 30, 90), -1)
    disk = (rgb[..., 0] == 40)
    seg = segment_photo(rgb, max_pixels=12_288)           # 96 x 128
    m = select_mask(seg, "300,330")
    assert _close(m, disk)
    up = np.kron(segment_photo(rgb[::7, ::7]).levels[0], np.ones((7, 7), np.int32))
    assert not _close(up == up[330, 300], disk)            # what plain scaling would give


def test_exported_from_the_package():
    assert gan_colorize.select_mask is select_mask
    assert gan_colorize.segment_photo is segment_photo


# ---------------------------------------------------------------------------------------------
# the command line

@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return hand_made_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt",
                                "--model.width", "0.25", "--data.size", "64")


def _cli(argv):
    return colorize_cli.main([str(a) for a in argv])


def test_cli_select_reproduces_the_api_mask(ckpt, tmp_path, shapes):
    rgb = shapes[0]
    Image.fromarray(rgb).save(tmp_path / "in.png")
    (tmp_path / "points.txt").write_text("35,48\n95,50\n-100,30\n")
    for how, spec in (("text", "35,48;95,50;-100,30"), ("file", tmp_path / "points.txt")):
        out = tmp_path / how
        assert _cli(["--checkpoint", ckpt, "--select", spec, "--composite", "hard",
                     "--device", "cpu", "--out", out, tmp_path / "in.png"]) == 0
        mask = np.asarray(Image.open(out / "in_mask.png")) > 0
        assert np.array_equal(mask, select_mask(rgb, "35,48;95,50;-100,30"))
        color = np.asarray(Image.open(out / "in_color.png")).astype(int)
        spread = color.max(2) - color.min(2)
        assert (spread[~mask] == 0).all() and (spread[mask] > 0).mean() > 0.5


@pytest.mark.parametrize("argv, message", [
    (["--select", "200,10"], r"skipped: point 200,10 is outside .*in\.png \(--select\) \(128x96"),
    (["--select", "1;2"], r"--select: bad point '1'"),
    (["--select", "1,2", "--mask", "full"], r"--mask and --select both given"),
])
def test_cli_select_errors_are_one_line(ckpt, tmp_path, shapes, capsys, argv, message):
    Image.fromarray(shapes[0]).save(tmp_path / "in.png")
    with pytest.raises(SystemExit) as exc:
        _cli(["--checkpoint", ckpt, "--device", "cpu", "--out", tmp_path / "out", *argv,
              tmp_path / "in.png"])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)
