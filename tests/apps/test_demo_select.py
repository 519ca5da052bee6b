"""The demo's click to select (demo_select.py through demo.Demo's handlers, no Gradio): clicks on
the click view give select_mask's mask at the photo's full resolution, and Colorize uses it."""
import re

import numpy as np
import pytest
from conftest import hand_made_checkpoint
from PIL import Image
from test_select import _close, _shapes

from gan_colorize.apps.demo import Demo, layer_mask
from gan_colorize.apps.select import parse_points, select_mask
from gan_colorize.core.config import DemoConfig
from gan_colorize.data.mask_families import resize_nearest


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return hand_made_checkpoint(tmp_path_factory.mktemp("ckpt") / "plain.pt",
                                "--model.width", "0.25")


@pytest.fixture()
def demo(ckpt):
    # max_side 64: the photo (128x96) is shown and painted at half size
    d = Demo.from_settings(DemoConfig(checkpoint=str(ckpt), device="cpu", max_side=64))
    assert d.colorizer is not None, d.load_error
    yield d
    d.close()


@pytest.fixture()
def photo(tmp_path):
    rgb, disk, rect = _shapes()
    Image.fromarray(rgb).save(tmp_path / "shapes.png")
    return tmp_path / "shapes.png", rgb, disk, rect


def test_clicks_select_at_full_resolution_and_colorize_uses_it(demo, photo):
    path, rgb, disk, rect = photo
    view, clicks = demo.start_selection(str(path))
    assert Image.open(view).size == (64, 48) and clicks == ""
    editor = demo.load_photo(str(path))[0]
    editor, view, clicks, message = demo.click(str(path), editor, clicks, False, (17, 24))
    assert clicks == "35,49"                    # view pixel (17, 24) -> photo pixel (35, 49)
    assert f"--select '{clicks}'" in message
    full = select_mask(rgb, clicks)
    assert _close(full, disk)
    assert editor["layers"][0].shape[:2] == (48, 64)
    assert np.array_equal(layer_mask(editor["layers"][0], 48, 64), resize_nearest(full, 48, 64))
    editor, _, clicks, message = demo.click(str(path), editor, clicks, False, (47, 25))
    assert np.array_equal(demo.selections.full_mask(str(path), editor["layers"][0], 96, 128),
                          select_mask(rgb, clicks))
    _, _, files, message = demo.colorize(str(path), editor, True)
    mask = np.asarray(Image.open(files[1])) > 0
    assert np.array_equal(mask, select_mask(rgb, clicks))   # full resolution, not the layer's
    out = np.asarray(Image.open(files[0])).astype(int)
    assert ((out.max(2) - out.min(2))[~mask] == 0).all()
    # a removal click inside the rectangle takes it away, leaving the disk
    editor, _, clicks, _ = demo.click(str(path), editor, clicks, True, (48, 24))
    assert [p[2] for p in parse_points(clicks)] == [True, True, False]
    assert _close(demo.selections.full_mask(str(path), editor["layers"][0], 96, 128), disk)


def test_a_painted_mask_is_kept_and_said(demo, photo):
    path = str(photo[0])
    editor = demo.load_photo(path)[0]
    stroke = np.zeros((48, 64, 4), np.uint8)
    stroke[40:44, 2:10] = 255
    editor["layers"] = [stroke]
    editor, _, clicks, message = demo.click(path, editor, "", False, (17, 24))
    on = layer_mask(editor["layers"][0], 48, 64)
    assert on[40:44, 2:10].all() and on[24, 17]
    assert "painted too" in message and "--select" not in message


def test_click_errors_are_one_line(demo, photo):
    editor = demo.load_photo(str(photo[0]))[0]
    *_, message = demo.click(None, editor, "", False, (1, 1))
    assert message == "**error:** upload a photo first"
    *_, message = demo.click(str(photo[0]), editor, "", False, (64, 1))
    assert re.fullmatch(r"\*\*error:\*\* point 64,1 is outside the click view \(64x48: .*\)",
                        message)
    assert demo.start_selection(None) == (None, "")
