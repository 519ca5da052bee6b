"""The demo served for real on 127.0.0.1 (a free port): called over HTTP through gradio_client,
and driven in headless Chromium (tests/apps/demo_browser.py). Needs the demo extra (skipped without
it; .ci/run installs it); the browser test also needs selenium, chromium and chromedriver and
says what is missing when it skips. Every wait has a time limit, and the fixtures close the
server and the browser whatever happens."""
import threading

import numpy as np
import pytest
from conftest import colourful, hand_made_checkpoint
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
pytest.importorskip("gradio")

import demo_browser  # noqa: E402  (tests/, beside this file)

from gan_colorize.core.config import DemoConfig  # noqa: E402
from gan_colorize.apps.demo import Demo, gray_view  # noqa: E402
from gan_colorize.apps.demo_page import free_port, launch  # noqa: E402

TIMEOUT = 120   # s, for one answer of the server on a busy 2-core machine


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(demo, url) of the page served with a hint-capable hand-made checkpoint."""
    tmp = tmp_path_factory.mktemp("served")
    ckpt = hand_made_checkpoint(tmp / "hints.pt", "--model.width", "0.25", "--hints.enabled", "true")
    demo = Demo.from_settings(DemoConfig(checkpoint=str(ckpt), device="cpu"))
    page = None
    try:
        page, url = launch(demo, prevent_thread_lock=True, quiet=True, port=free_port())
        yield demo, url
    finally:
        if page is not None:
            page.close()
        demo.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A 96x128 colour photo (and a 300x400 one for the browser), a left-half and a right-half mask (RGBA, painted = opaque), and a
    hints image with one green hint in the left half."""
    tmp = tmp_path_factory.mktemp("files")
    Image.fromarray(colourful(96, 128, 7)).save(tmp / "photo.png")
    for name, cols in (("left", slice(0, 64)), ("right", slice(64, None))):
        layer = np.zeros((96, 128, 4), np.uint8)
        layer[:, cols] = 255
        Image.fromarray(layer).save(tmp / f"{name}.png")
    hints = np.zeros((96, 128, 4), np.uint8)
    hints[40:44, 20:24] = (30, 200, 60, 255)
    Image.fromarray(hints).save(tmp / "hints.png")
    Image.fromarray(colourful(300, 400, 8)).save(tmp / "browser.png")   # large on the canvas
    return tmp


@pytest.fixture()
def client(served, tmp_path):
    return gradio_client.Client(served[1], verbose=False, download_files=str(tmp_path),
                                analytics_enabled=False)


def editor_value(*layer_files):
    return {"background": None, "layers": [gradio_client.handle_file(str(f)) for f in layer_files],
            "composite": None}


def result_images(result):
    """colorize's answer -> (output, mask) arrays of the downloaded PNGs, and the message."""
    _, _, downloads, message = result
    named = {p.rsplit("/", 1)[1]: p for p in downloads}
    return (np.asarray(Image.open(named["photo_color.png"])),
            np.asarray(Image.open(named["photo_mask.png"])), message)


def check_colour_only_inside(out, mask):
    gray = (out[..., 0] == out[..., 1]) & (out[..., 1] == out[..., 2])
    assert gray[mask == 0].all(), "colour outside the mask"
    assert not gray[mask == 255].any(), "no colour inside the mask"


def test_api_colorize_with_mask_and_hints(client, files):
    photo = gradio_client.handle_file(str(files / "photo.png"))
    result = client.submit(photo, editor_value(files / "left.png", files / "hints.png"), True,
                           api_name="/colorize").result(timeout=TIMEOUT)
    out, mask, message = result_images(result)
    assert message.startswith("done in"), message
    assert out.shape == (96, 128, 3)
    assert (mask[:, :64] == 255).all() and (mask[:, 64:] == 0).all()
    check_colour_only_inside(out, mask)
    rgb = colourful(96, 128, 7)
    assert np.abs(gray_view(out).astype(int) - gray_view(rgb).astype(int)).max() <= 1   # L kept
    assert "--hints photo_hints.png" in message
    assert any(p.endswith("photo_hints.png") for p in result[2])


def test_two_requests_at_once_are_both_answered_correctly(client, files):
    photo = gradio_client.handle_file(str(files / "photo.png"))
    jobs = {side: client.submit(photo, editor_value(files / f"{side}.png"), True,
                                api_name="/colorize") for side in ("left", "right")}
    for side, job in jobs.items():
        out, mask, message = result_images(job.result(timeout=TIMEOUT))
        assert message.startswith("done in"), message
        half = slice(0, 64) if side == "left" else slice(64, None)
        assert (mask[:, half] == 255).all() and mask.sum() == 96 * 64 * 255
        check_colour_only_inside(out, mask)


def test_bad_input_is_answered_and_the_server_keeps_serving(client, files, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    value, message = client.submit(gradio_client.handle_file(str(text)), api_name="/load_photo"
                                   ).result(timeout=TIMEOUT)
    assert value is None and message.startswith("**error:** cannot read notes.png")
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 10, 4), np.uint8)).save(small)
    photo = gradio_client.handle_file(str(files / "photo.png"))
    *_, message = client.submit(photo, editor_value(small), True, api_name="/colorize"
                                ).result(timeout=TIMEOUT)
    assert "painted on another photo" in message
    # and it still answers
    value, message = client.submit(photo, api_name="/load_photo").result(timeout=TIMEOUT)
    assert message.startswith("photo.png: 128x96")


def test_a_browser_paints_a_stroke_and_sees_colour_only_there(served, files):
    reason = demo_browser.browser_missing()
    if reason:
        pytest.skip(f"no browser to drive: {reason}")
    from scipy import ndimage
    driver = demo_browser.open_browser(timeout=TIMEOUT)
    # a driver call that never returns must not hang the run: quit it from outside
    watchdog = threading.Timer(4 * TIMEOUT, driver.quit)
    watchdog.start()
    try:
        shown = demo_browser.colorize_in_browser(driver, served[1], files / "browser.png",
                                                 hard=True, timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        driver.quit()
    out, mask = shown["output"], shown["mask"]
    assert out.shape[:2] == mask.shape and out.shape[0] > 50, out.shape
    assert 0.005 < mask.mean() < 0.5, "the stroke did not land on the mask layer"
    chroma = demo_browser.chroma(out)
    inside = ndimage.binary_erosion(mask, iterations=2)
    far = ~ndimage.binary_dilation(mask, iterations=4)
    assert inside.any() and chroma[inside].mean() > 40, "no colour inside the stroke"
    assert chroma[far].max() <= 12 and chroma[far].mean() < 1, "colour far outside the stroke"


def test_a_browser_selects_two_regions_by_clicks_and_sees_colour_only_there(served, tmp_path):
    """Upload, two clicks on the click view (a dark disk and a bright rectangle), Colorize: the
    mask is select_mask's for the clicks the page reports, coloured inside and gray outside."""
    reason = demo_browser.browser_missing()
    if reason:
        pytest.skip(f"no browser to drive: {reason}")
    import cv2
    from gan_colorize.apps.select import select_mask
    rgb = np.full((300, 400, 3), 128, np.uint8)
    cv2.circle(rgb, (110, 150), 70, (40, 30, 90), -1)
    rgb[60:240, 240:370] = (240, 220, 60)
    Image.fromarray(rgb).save(tmp_path / "shapes.png")
    driver = demo_browser.open_browser(timeout=TIMEOUT)
    watchdog = threading.Timer(4 * TIMEOUT, driver.quit)
    watchdog.start()
    try:
        shown = demo_browser.select_in_browser(driver, served[1], tmp_path / "shapes.png",
                                               [(110, 150), (305, 150)], hard=True,
                                               timeout=TIMEOUT)
    finally:
        watchdog.cancel()
        driver.quit()
    assert shown["clicks"] is not None and shown["clicks"].count(";") == 1, shown["said"]
    points = [tuple(int(v) for v in p.split(",")) for p in shown["clicks"].split(";")]
    assert len(points) == 2 and abs(points[0][0] - 110) <= 3 and abs(points[1][1] - 150) <= 3
    mask, out = shown["downloads"]["mask"], shown["downloads"]["color"]
    assert np.array_equal(mask, select_mask(rgb, shown["clicks"]))
    assert 0.3 < mask.mean() < 0.5          # the disk (~13%) and the rectangle (~20%)
    chroma = demo_browser.chroma(out)
    assert (chroma[~mask] == 0).all(), "colour outside the selection"
    assert (chroma[mask] > 0).mean() > 0.95, "the selection is not coloured"
