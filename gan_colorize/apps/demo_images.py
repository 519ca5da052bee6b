"""The demo's images and editor layers, as numpy arrays (no Gradio): the editing size, the gray
view, reading the mask and hints layers, drawing a mask layer, the views saved for the page.
demo.py's handlers and demo_select.py use them; demo.py's docstring says how layers are read.
"""
import numpy as np
from PIL import Image

from ..core.errors import UserError
from ..core.imageio import ALPHA_MIN
from ..data.mask_families import resize_nearest
from .inputs import prepare_mask

MASK_ALPHA = 176      # masks the page draws (presets, invert): see-through, yet >= ALPHA_MIN


def editing_shape(h, w, max_side):
    """The size the photo is shown and painted at: (h, w) shrunk, aspect kept, so that the longer
    side is at most max_side (rounded, >= 1)."""
    s = min(1.0, max_side / max(h, w))
    return max(1, round(h * s)), max(1, round(w * s))


def shrink(rgb, h, w):
    """uint8 (H,W,C) -> uint8 (h,w,C) for display; area-averaged (PIL's box filter)."""
    if rgb.shape[:2] == (h, w):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))


def gray_view(rgb):
    """uint8 (H,W,3) -> uint8 (H,W,3), R = G = B: the photo as the network sees it, its L shown
    as sRGB gray. For ab = 0, Lab -> sRGB gives R = G = B = the sRGB curve of the luminance Y, so
    that is computed directly (a table to linear light, color.py's Y weights, the curve back),
    about 10x faster than the round trip through Lab and equal to the Colorizer's gray (an empty
    mask, hard composite) to one level."""
    from ..core.color import XYZ_FROM_RGB   # deferred: imports torch (the demo starts without it)
    levels = np.arange(256) / 255
    linear = np.where(levels > 0.04045, ((levels + 0.055) / 1.055) ** 2.4, levels / 12.92)
    y = (linear.astype(np.float32) * XYZ_FROM_RGB[1].numpy().astype(np.float32)[:, None]).T
    lum = y[rgb[..., 0], 0] + y[rgb[..., 1], 1] + y[rgb[..., 2], 2]     # (H,W) in [0,1]
    srgb = np.where(lum > 0.0031308, 1.055 * np.maximum(lum, 0.0031308) ** (1 / 2.4) - 0.055,
                    12.92 * lum)
    g = np.clip(np.rint(srgb * 255), 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def check_layer_shape(layer, h, w, what):
    """A layer (h',w',C) must have the photo's (h, w) aspect ratio, to one pixel of rounding at
    the layer's scale; else the layer was painted on another photo: UserError."""
    lh, lw = layer.shape[:2]
    if layer.ndim != 3 or layer.shape[2] not in (3, 4) or lh < 1 or lw < 1:
        raise UserError(f"the {what} layer must be an RGB or RGBA image, got shape {layer.shape}")
    if abs(lh * w - lw * h) > max(h, w):
        raise UserError(f"the {what} layer is {lw}x{lh} but the photo is {w}x{h}: it was painted "
                        "on another photo; paint it again on this one")


def layer_mask(layer, h, w):
    """The mask layer -> bool (h, w): painted pixels (alpha >= 128), or, for a layer without any
    transparent pixel, a mask image read as gan-colorize reads one (luminance >= 0.5). Scaled to
    (h, w) with nearest neighbour. None (nothing painted) -> all False."""
    if layer is None:
        return np.zeros((h, w), bool)
    check_layer_shape(layer, h, w, "mask")
    if layer.shape[2] == 4 and (layer[..., 3] < ALPHA_MIN).any():
        on = layer[..., 3] >= ALPHA_MIN
    else:
        on = prepare_mask(layer, *layer.shape[:2])[0] > 0.5
    return resize_nearest(on, h, w)


def layer_hints(layer, h, w):
    """The hints layer -> uint8 (h, w, 4), a hints image as `gan-colorize --hints` reads one:
    alpha 255 and the painted colour where alpha >= 128, all 0 elsewhere (so the PNG holds
    nothing but the hints). Scaled with nearest neighbour. None, or nothing painted -> None."""
    if layer is None:
        return None
    check_layer_shape(layer, h, w, "hints")
    if layer.shape[2] == 3:
        on = np.ones(layer.shape[:2], bool)
    else:
        on = layer[..., 3] >= ALPHA_MIN
    if not on.any():
        return None
    rgba = np.zeros(layer.shape[:2] + (4,), np.uint8)
    rgba[on, :3] = layer[on, :3]
    rgba[on, 3] = 255
    return np.ascontiguousarray(resize_nearest(rgba, h, w))


def mask_layer(mask):
    """bool (h, w) -> an editor layer uint8 (h, w, 4): white at alpha MASK_ALPHA where True (the
    photo shows through, and it still counts as painted), clear elsewhere."""
    layer = np.zeros(mask.shape + (4,), np.uint8)
    layer[mask] = (255, 255, 255, MASK_ALPHA)
    return layer


def save_view(rgb, path):
    """A view for the page: lossless WebP at the fastest setting. Lossless, because a view must
    show exactly where colour is (JPEG rings colour up to a block, 8 px, past a strong edge);
    WebP, because it encodes 2-5x faster than PNG at a smaller size. The downloads are PNGs."""
    Image.fromarray(rgb).save(path, format="WEBP", lossless=True, quality=0, method=0)


def outlined(rgb, mask, hints=None):
    """A view with the mask's outline (a 1-px black or white ring just outside it, hints.draw_
    hints) and, when given, the hints in their colour: rgb uint8 (h,w,3), mask bool (h,w), hints
    uint8 (h,w,4) or None -> uint8 (h,w,3)."""
    from ..data.hints import draw_hints   # deferred: imports torch
    out = draw_hints(rgb, mask)
    if hints is not None:
        out = draw_hints(out, hints[..., 3] >= ALPHA_MIN, hints[..., :3])
    return out
