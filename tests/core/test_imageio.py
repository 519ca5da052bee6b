"""imageio.read_rgb / read_image: every odd file kind -> uint8 RGB, or a one-line BadImageError."""
import struct
import warnings
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image
from faults import bomb_png

from gan_colorize.core.errors import UserError
from gan_colorize.core.imageio import BadImageError, is_image_file, read_image, read_rgb


def colourful(h, w, seed=0):
    """A smooth colour gradient plus a little noise: uint8 (h,w,3)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 1 - x / max(w - 1, 1)], -1) * 255
    rgb += np.random.default_rng(seed).normal(0, 8, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def test_plain_rgb_roundtrip(tmp_path):
    a = colourful(20, 30)
    Image.fromarray(a).save(tmp_path / "a.png")
    rgb, gray = read_image(tmp_path / "a.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3) and not gray
    assert np.array_equal(rgb, a)
    assert np.array_equal(read_rgb(str(tmp_path / "a.png")), a)


def test_rgba_composited_on_white(tmp_path):
    a = colourful(10, 12)
    alpha = np.zeros((10, 12), np.uint8)
    alpha[:, 6:] = 255
    alpha[0, 0] = 128
    Image.fromarray(np.dstack([a, alpha])).save(tmp_path / "a.png")
    rgb = read_rgb(tmp_path / "a.png")
    assert np.array_equal(rgb[:, 6:], a[:, 6:])          # opaque: unchanged
    assert (rgb[1:, :6] == 255).all()                     # transparent: white
    expect = np.rint(a[0, 0].astype(float) * 128 / 255 + 255 * (1 - 128 / 255))
    assert np.abs(rgb[0, 0].astype(int) - expect).max() <= 1


def test_palette_and_palette_with_transparency(tmp_path):
    a = colourful(16, 16)
    p = Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    p.save(tmp_path / "p.png")
    rgb, gray = read_image(tmp_path / "p.png")
    assert np.array_equal(rgb, np.asarray(p.convert("RGB"))) and not gray
    p.info["transparency"] = 0
    p.save(tmp_path / "pt.png", transparency=0)
    rgb = read_rgb(tmp_path / "pt.png")
    idx0 = np.asarray(p) == 0
    assert (rgb[idx0] == 255).all()


def test_gray_palette_is_gray(tmp_path):
    g = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).convert("P")
    g.save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png")[1]


def test_cmyk(tmp_path):
    a = colourful(12, 20)
    Image.fromarray(a).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    Image.fromarray(a).convert("CMYK").save(tmp_path / "c.tif")
    for f in ("c.jpg", "c.tif"):
        rgb, gray = read_image(tmp_path / f)
        assert rgb.shape == (12, 20, 3) and not gray
        assert np.abs(rgb.astype(int) - a).mean() < 12


@pytest.mark.parametrize("mode", ["L", "LA", "1"])
def test_gray_modes_give_three_equal_channels(tmp_path, mode):
    g = colourful(9, 11)[..., 0]
    Image.fromarray(g).convert(mode).save(tmp_path / "g.png")
    rgb, gray = read_image(tmp_path / "g.png")
    assert gray and rgb.shape == (9, 11, 3)
    assert np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    if mode == "L":
        assert np.array_equal(rgb[..., 0], g)


def test_rgb_with_equal_channels_counts_as_gray(tmp_path):
    g = colourful(9, 11)[..., 1]
    Image.fromarray(np.repeat(g[..., None], 3, 2)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png")[1]


def test_16bit_gray_is_scaled_not_truncated(tmp_path):
    g = np.random.default_rng(0).integers(0, 65536, (10, 13), dtype=np.uint16)
    g[0, 0], g[0, 1] = 65535, 128  # 128/257 rounds to 0; 65535 -> 255
    cv2.imwrite(str(tmp_path / "g16.png"), g)
    rgb, gray = read_image(tmp_path / "g16.png")
    assert gray and rgb.dtype == np.uint8
    assert np.array_equal(rgb[..., 0], np.rint(g / 257).astype(np.uint8))
    assert rgb[0, 0, 0] == 255 and rgb[0, 1, 0] == 0


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16bit_colour(tmp_path, ext):
    a = np.random.default_rng(1).integers(0, 65536, (10, 13, 3), dtype=np.uint16)
    a[0, 0] = (65535, 384, 0)  # 384/257 = 1.49 -> 1, where dropping the low byte also gives 1
    a[0, 1] = (200, 65407, 65280)  # 200/257 -> 1 (low-byte drop: 0); 65407/257=254.5 -> 254/255
    cv2.imwrite(str(tmp_path / f"c{ext}"), a[..., ::-1])
    rgb, gray = read_image(tmp_path / f"c{ext}")
    assert not gray
    assert np.array_equal(rgb, np.rint(a / 257).astype(np.uint8))
    assert rgb[0, 1, 0] == 1  # properly rounded, not a >> 8


def test_16bit_colour_with_alpha(tmp_path):
    a = np.full((4, 5, 4), 65535, np.uint16)
    a[..., :3] = 0
    a[:, :2, 3] = 0  # left two columns transparent
    cv2.imwrite(str(tmp_path / "c.png"), a)
    rgb = read_rgb(tmp_path / "c.png")
    assert (rgb[:, :2] == 255).all() and (rgb[:, 2:] == 0).all()


@pytest.mark.parametrize("orientation", [3, 5, 6, 7, 8])
def test_exif_orientation(tmp_path, orientation):
    a = colourful(10, 16)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "e.png", exif=exif)  # PNG: lossless, so pixels can be compared exactly
    rgb = read_rgb(tmp_path / "e.png")
    expect = {3: np.rot90(a, 2), 5: a.transpose(1, 0, 2), 6: np.rot90(a, -1),
              7: a[::-1, ::-1].transpose(1, 0, 2), 8: np.rot90(a, 1)}[orientation]
    assert rgb.shape == expect.shape
    assert np.array_equal(rgb, expect)


def test_exif_rotated_jpeg_shape(tmp_path):
    im = Image.fromarray(colourful(10, 16))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "e.jpg", exif=exif)
    assert read_rgb(tmp_path / "e.jpg").shape == (16, 10, 3)


def _with_exif_chunk(png_bytes, orientation):
    """Insert an eXIf chunk (orientation tag) right after IHDR of a PNG file's bytes."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = exif.tobytes()
    data = data[6:] if data.startswith(b"Exif\x00\x00") else data
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data))
    end_ihdr = 8 + 4 + 4 + 13 + 4
    return png_bytes[:end_ihdr] + chunk + png_bytes[end_ihdr:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_colour_keeps_exif_orientation(tmp_path, orientation):
    """The OpenCV path for 16-bit colour applies EXIF orientation exactly like PIL's path."""
    a = np.random.default_rng(2).integers(0, 256, (6, 9, 3)).astype(np.uint16) * 257
    ok, buf = cv2.imencode(".png", a[..., ::-1])
    (tmp_path / "c16.png").write_bytes(_with_exif_chunk(buf.tobytes(), orientation))
    im8 = Image.fromarray((a // 257).astype(np.uint8))
    exif = im8.getexif()
    exif[0x0112] = orientation
    im8.save(tmp_path / "c8.png", exif=exif)
    assert np.array_equal(read_rgb(tmp_path / "c16.png"), read_rgb(tmp_path / "c8.png"))


def _bad(path, match):
    with pytest.raises(BadImageError, match=match) as err:
        read_rgb(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert isinstance(err.value, UserError)
    return msg


def test_bad_files(tmp_path):
    (tmp_path / "zero.jpg").write_bytes(b"")
    _bad(tmp_path / "zero.jpg", "empty")
    (tmp_path / "text.png").write_text("not an image at all\n" * 20)
    _bad(tmp_path / "text.png", "not an image")
    Image.fromarray(colourful(64, 64)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    _bad(tmp_path / "trunc.jpg", "trunc.jpg")
    (tmp_path / "rand.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    _bad(tmp_path / "rand.jpg", "rand.jpg")
    _bad(tmp_path / "missing.png", "no such file")
    (tmp_path / "dir.png").mkdir()
    _bad(tmp_path / "dir.png", "dir.png")
    Image.fromarray(colourful(32, 32)).save(tmp_path / "full.png")
    png = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(png[: len(png) // 2])
    _bad(tmp_path / "trunc.png", "trunc.png")



def test_decompression_bomb_header_refused(tmp_path):
    bomb_png(tmp_path / "bomb.png", 100_000, 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape either
        msg = _bad(tmp_path / "bomb.png", "decompression bomb")
    assert "bomb.png" in msg


def test_bomb_between_pil_warn_and_error_limits_is_refused(tmp_path, monkeypatch):
    """PIL only warns between MAX_IMAGE_PIXELS and twice that; we refuse, without decoding."""
    Image.fromarray(colourful(40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 px: PIL's "warning" zone
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _bad(tmp_path / "big.png", "bomb")
    assert not decoded


def test_max_pixels_argument(tmp_path):
    Image.fromarray(colourful(40, 50)).save(tmp_path / "a.png")
    with pytest.raises(BadImageError, match="over the limit of 1000"):
        read_rgb(tmp_path / "a.png", max_pixels=1000)
    assert read_rgb(tmp_path / "a.png", max_pixels=2000).shape == (40, 50, 3)


def test_multiframe_first_frame(tmp_path):
    frames = [Image.fromarray(np.full((6, 7, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.tif", save_all=True, append_images=frames[1:])
    rgb = read_rgb(tmp_path / "a.tif")
    assert rgb.shape == (6, 7, 3) and (rgb == 10).all()


@pytest.mark.parametrize("ext", [".bmp", ".webp", ".tiff", ".jpeg"])
def test_other_formats(tmp_path, ext):
    a = colourful(12, 14)
    Image.fromarray(a).save(tmp_path / f"a{ext}", **({"lossless": True} if ext == ".webp" else {}))
    rgb = read_rgb(tmp_path / f"a{ext}")
    assert rgb.shape == (12, 14, 3)
    if ext != ".jpeg":
        assert np.array_equal(rgb, a)


def test_is_image_file():
    assert is_image_file("x/Y.JPG") and is_image_file("a.webp") and is_image_file("a.TiFf")
    assert not is_image_file("a.txt") and not is_image_file("a.jpg.bak")


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**31 - 1),
       mode=st.sampled_from(["RGB", "L", "RGBA"]))
def test_lossless_roundtrip_property(tmp_path_factory, h, w, seed, mode):
    rng = np.random.default_rng(seed)
    shape = {"RGB": (h, w, 3), "L": (h, w), "RGBA": (h, w, 4)}[mode]
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    if mode == "RGBA":
        a[..., 3] = 255  # fully opaque: compositing must be the identity
    path = tmp_path_factory.mktemp("p") / "a.png"
    Image.fromarray(a, mode).save(path)
    rgb = read_rgb(path)
    expect = {"RGB": a, "L": np.repeat(a[..., None], 3, 2), "RGBA": a[..., :3]}[mode]
    assert rgb.dtype == np.uint8 and np.array_equal(rgb, expect)
