"""What the Colorizer accepts, normalised without torch: images (gray, RGB or RGBA uint8 in any
of their layouts) and masks (prepare_mask), the empty-mask message and the working size.
Shared by the API (api.py), its command line (colorize_cli.py) and the demo, which import
it before torch loads. See api.py for the rules.
"""
from pathlib import Path

import numpy as np

from ..data.mask_families import resize_nearest

# package data (setup.py), so that it is there after `pip install .` too, not only in a checkout
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "default.pt"
COMPOSITES = ("none", "hard")


# ---------------------------------------------------------------------------------------------
# arrays in

def as_rgb(image):
    """uint8 (H,W) | (H,W,1) | (H,W,3) | (H,W,4) -> uint8 (H,W,3)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image must be (H,W) or (H,W,3), got shape {a.shape}")
    return np.ascontiguousarray(a[..., :3])


class EmptyMaskWarning(UserWarning):
    """A mask with no pixel set (after reading and thresholding it): the output is gray."""


def _mask_channels(mask):
    """A mask array -> the values it is read from: (h,w), or (h,w,3) RGB (luminance taken later).
    Wrong rank, channels or an empty array -> ValueError."""
    m = np.asarray(mask)
    if m.ndim == 3:
        if m.shape[2] in (1, 2):
            m = m[..., 0]
        elif m.shape[2] in (3, 4):
            m = m[..., :3]
        else:
            raise ValueError(f"mask must be (h,w) or (h,w,C) with C <= 4, got shape {m.shape}")
    elif m.ndim != 2:
        raise ValueError(f"mask must be (h,w), got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"mask is empty: shape {m.shape}")
    if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.integer):
        m = np.nan_to_num(m.astype(np.float64))
    return m


def _mask_scale(m):
    """The value that means 'colour' in the mask values m (from _mask_channels), by dtype and
    largest value: bool 1; integers 1 when their largest value is 1 (0/1, the usual way to write
    a mask in numpy), else 255 (uint16: 65535); float 1, or 255 when its largest value is
    above 1."""
    if m.dtype == np.bool_:
        return 1.0
    if np.issubdtype(m.dtype, np.integer):
        if m.max() <= 1:
            return 1.0
        return 65535.0 if m.dtype == np.uint16 else 255.0
    return 255.0 if m.max() > 1.0 else 1.0


def _threshold(m):
    """Mask values (from _mask_channels) -> bool (h,w): luminance of RGB, >= half of the scale."""
    scale = _mask_scale(m)
    m = m.astype(np.float64)
    if m.ndim == 3:
        m = m @ np.array([0.299, 0.587, 0.114])
    return m / scale >= 0.5


def prepare_mask(mask, h, w):
    """Any mask array (see the module docstring) -> (float32 (h,w) of {0,1}, note or None).
    The note says what was adapted (a resize); errors (empty, wrong rank) -> ValueError."""
    binary = _threshold(_mask_channels(mask))
    note = None
    if binary.shape != (h, w):
        note = f"mask is {binary.shape[1]}x{binary.shape[0]}, image is {w}x{h}: resized (nearest)"
        binary = resize_nearest(binary, h, w)
    return np.ascontiguousarray(binary, dtype=np.float32), note


def empty_mask_message(mask):
    """One line for a mask with no pixel set once prepared (prepare_mask): what it was read as,
    and what that means."""
    m = _mask_channels(mask)
    lost = int(_threshold(m).sum())
    if lost:
        why = f"after resizing it to the image: nearest neighbour dropped its {lost} set pixel(s)"
    elif m.dtype == np.bool_:
        why = "(bool, all False)"
    else:
        scale = _mask_scale(m)
        scale_text = "0/1" if scale == 1 and m.dtype.kind in "iu" else f"0..{scale:g}"
        why = (f"({np.asarray(mask).dtype} read as {scale_text}, largest value {m.max():g}, "
               f"under the threshold {scale / 2:g})")
    return (f"the mask has no pixel set {why}: nothing is to be coloured, the output is the gray "
            "image (exactly so with composite hard)")


def working_shape(h, w, size):
    """(h, w) with the shorter side resized to `size`, aspect kept (rounded)."""
    s = size / min(h, w)
    if h <= w:
        return size, max(1, round(w * s))
    return max(1, round(h * s)), size
