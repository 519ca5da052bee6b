"""Robust image reading: any common file in, uint8 RGB (H,W,3) out, or a one-line BadImageError.

Shared by the dataset cache (cache.py), the split lists (splits.py) and the inference CLI.
Rules, in order:
- Size is checked from the header before any pixel is decoded: more than `max_pixels`
  (default PIL's Image.MAX_IMAGE_PIXELS, ~89.5 M) is refused as a possible decompression bomb,
  and PIL's own DecompressionBombWarning is turned into the same error.
- EXIF orientation is applied (PIL.ImageOps.exif_transpose), so a portrait photo stored as
  landscape + "rotate 90" comes out portrait. A broken EXIF block is ignored, not fatal.
- Transparency (RGBA, LA, palette with transparency) is composited on WHITE, so transparent
  areas read as neutral white, never as the undefined colour stored under alpha=0.
- Palette (P), CMYK, YCbCr, LAB, HSV, 1-bit go through PIL's conversion to RGB.
- Gray (L, LA, I, I;16*, F) -> 3 equal channels.
- 16-bit data (gray I;16 or 16-bit RGB PNG/TIFF) is scaled with round(x / 257), i.e. 65535 -> 255
  exactly; PIL alone would just drop the low byte of 16-bit RGB, so those go through OpenCV.
- Multi-frame files (GIF, TIFF, MPO): the first frame.
- Missing, zero-byte, truncated, or non-image files -> BadImageError naming the file.
"""
import os
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

# hint images (a hints PNG, the demo's painted layers): a pixel counts from this alpha on
ALPHA_MIN = 128



class BadImageError(UserError):
    """A file that cannot be used as an image. The message is one line and names the file;
    .path and .reason hold its parts, for callers that read something else than an input image
    (a mask) and say so."""


def _fail(path, reason):
    reason = " ".join(str(reason).split())  # one line, whatever PIL/OpenCV said
    err = BadImageError(f"cannot read image {os.fspath(path)!s}: {reason}")
    err.path, err.reason = os.fspath(path), reason
    return err


def _pixel_limit(max_pixels):
    if max_pixels is not None:
        return int(max_pixels)
    return Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 89_478_485


def _sixteen_bit_colour(path, im):
    """True for RGB(A) files stored with 16 bits per channel, which PIL truncates to 8."""
    if im.mode not in ("RGB", "RGBA"):
        return False
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        return len(head) == 26 and head[12:16] == b"IHDR" and head[24] == 16
    if im.format == "TIFF":
        bits = im.tag_v2.get(258)  # BitsPerSample
        bits = bits if isinstance(bits, tuple) else (bits,)
        return any(b == 16 for b in bits if b is not None)
    return False


def _read_16bit_colour(path, orientation):
    """16-bit RGB(A) via OpenCV -> uint8 RGB, alpha composited on white, EXIF applied."""
    buf = np.fromfile(path, dtype=np.uint8)  # fromfile+imdecode also works for non-ASCII paths
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError("OpenCV could not decode the 16-bit data")
    arr = arr.astype(np.float32) / (65535.0 if arr.dtype == np.uint16 else 255.0)
    rgb = arr[..., 2::-1]  # BGR(A) -> RGB
    if arr.shape[2] == 4:
        a = arr[..., 3:4]
        rgb = rgb * a + (1.0 - a)
    out = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    return _orient(out, orientation)


def _orient(arr, orientation):
    """Apply an EXIF orientation tag (1..8) to an (H,W,C) array, like ImageOps.exif_transpose."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


def _to_rgb(im):
    """PIL image (loaded, oriented) -> uint8 (H,W,3)."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N") or mode == "I":
        a = np.asarray(im).astype(np.float64)
        # "I" is what PIL gives for 16-bit gray PNG/TIFF in some versions; treat as 16-bit data.
        g = np.clip(np.rint(a / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a * 255.0 if np.nanmax(a) <= 1.0 else a  # float images are either [0,1] or [0,255]
        g = np.clip(np.rint(np.nan_to_num(a)), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        mode == "P" and "transparency" in im.info) or (mode in ("L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    if mode in ("1", "L", "LA", "La"):
        g = np.asarray(im.convert("L"), dtype=np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    return np.array(im.convert("RGB"), dtype=np.uint8)


def read_image(path, max_pixels=None):
    """Read any supported image file.

    Returns (rgb, was_gray): rgb uint8 (H,W,3); was_gray is True when the file holds no colour
    (a single-channel mode, a palette of grays, or RGB with R == G == B everywhere).
    Raises BadImageError (a UserError) naming the file for anything unusable.
    """
    path = os.fspath(path)
    limit = _pixel_limit(max_pixels)
    try:
        if os.path.getsize(path) == 0:
            raise _fail(path, "file is empty (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # reads the header only
                w, h = im.size
                if w * h > limit:
                    raise _fail(path, f"{w}x{h} = {w * h} pixels is over the limit of {limit} "
                                      "(possible decompression bomb); refused without decoding")
                if w < 1 or h < 1:
                    raise _fail(path, f"bad size {w}x{h}")
                try:
                    orientation = int(im.getexif().get(0x0112, 1))
                except Exception:  # broken EXIF: the pixels may still be fine
                    orientation = 1
                if _sixteen_bit_colour(path, im):
                    return _read_16bit_colour(path, orientation), False
                im.seek(0)
                im.load()  # the actual decode; raises on truncated data
                src_mode = im.mode
                gray_palette = False
                if src_mode == "P":
                    pal = np.asarray(im.getpalette() or [], dtype=np.int32).reshape(-1, 3)
                    used = np.unique(np.asarray(im))
                    used = used[used < len(pal)]
                    gray_palette = len(used) > 0 and bool(np.all(pal[used] == pal[used][:, :1]))
                try:
                    im = ImageOps.exif_transpose(im)
                except Exception:
                    pass
                rgb = _to_rgb(im)
    except BadImageError:
        raise
    except Image.DecompressionBombWarning as e:
        raise _fail(path, f"{e} Refused without decoding") from None
    except Image.DecompressionBombError as e:
        raise _fail(path, f"{e} Refused without decoding") from None
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory") from None
    except UnidentifiedImageError:
        raise _fail(path, "not an image file (unknown or corrupt format)") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as e:
        # truncated streams, broken headers, unsupported modes: PIL raises a zoo of types
        raise _fail(path, f"{type(e).__name__}: {e}") from None
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise _fail(path, f"unexpected decoded shape {rgb.shape}")
    was_gray = src_mode in GRAY_MODES or gray_palette or bool(
        np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))
    return rgb, was_gray


def read_rgb(path, max_pixels=None):
    """Read an image file as uint8 RGB (H,W,3). See the module docstring for the rules."""
    return read_image(path, max_pixels=max_pixels)[0]


def is_image_file(path):
    """True when the name has one of the supported extensions (case-insensitive)."""
    return os.fspath(path).lower().endswith(IMAGE_EXTENSIONS)


def resize_short(img, short, interp=None):
    """Resize (h,w[,c]) uint8 so that min(h,w) == short, keeping the aspect ratio (and a
    trailing channel axis, also of length 1). Default interpolation: INTER_AREA when shrinking
    (no aliasing), INTER_CUBIC when enlarging."""
    h, w = img.shape[:2]
    if min(h, w) == short:
        return img
    s = short / min(h, w)
    nh, nw = (short, max(1, round(w * s))) if h <= w else (max(1, round(h * s)), short)
    if interp is None:
        interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    out = cv2.resize(img, (nw, nh), interpolation=interp)
    return out.reshape(nh, nw, *img.shape[2:])
