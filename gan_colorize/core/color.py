"""sRGB <-> CIELAB (D65, 2 degree observer) in torch, and the model's value ranges.

Batched (N,3,H,W), on any device, differentiable. The arithmetic matches skimage.color's
rgb2lab/lab2rgb, including how lab2rgb clips out-of-gamut colours, so the numbers here agree with
the wider ecosystem. Whatever the input dtype, the conversion runs in float32 with autocast off:
the cube roots and the 2.4 power lose too much in bfloat16 (errors of whole Lab units), and the
result goes back in the input dtype.

Model space (pix2pix's colorization mode): gray = L/50 - 1 in [-1,1], ab = ab/110 in about [-1,1].
"""
import torch

# sRGB primaries to CIE XYZ, and the D65 white point; the same constants as skimage.color.
XYZ_FROM_RGB = torch.tensor([[0.412453, 0.357580, 0.180423],
                              [0.212671, 0.715160, 0.072169],
                              [0.019334, 0.119193, 0.950227]], dtype=torch.float64)
_RGB_FROM_XYZ = torch.linalg.inv(XYZ_FROM_RGB)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_EPS = 0.008856          # (6/29)^3: below it the Lab curve is linear
_KAPPA = 7.787           # slope of that linear part, in f(t) space
_F_EPS = 0.2068966       # 6/29: the same break point, in f(t) space


def _channel_mix(matrix, x):
    """matrix (3,3) applied to the channel axis of x (N,3,H,W)."""
    return torch.einsum("ij,njhw->nihw", matrix.to(device=x.device, dtype=x.dtype), x)


def _no_autocast(x):
    return torch.autocast(device_type=x.device.type, enabled=False)


def rgb_to_lab(rgb):
    """rgb (N,3,H,W) in [0,1] -> lab (N,3,H,W): L in [0,100], a and b in about [-110,110]."""
    _check(rgb, "rgb")
    dtype = rgb.dtype
    with _no_autocast(rgb):
        x = rgb.float()
        linear = torch.where(x > 0.04045, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)
        xyz = _channel_mix(XYZ_FROM_RGB, linear)
        white = torch.tensor(_WHITE_D65, device=x.device).view(1, 3, 1, 1)
        t = xyz / white
        f = torch.where(t > _EPS, t.clamp_min(_EPS) ** (1 / 3), _KAPPA * t + 16 / 116)
        fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
        lab = torch.cat([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)
    return lab.to(dtype)


def lab_to_rgb(lab):
    """lab (N,3,H,W) -> rgb (N,3,H,W) in [0,1]; out-of-gamut colours clipped as skimage does."""
    _check(lab, "lab")
    dtype = lab.dtype
    with _no_autocast(lab):
        x = lab.float()
        fy = (x[:, 0:1] + 16) / 116
        fx = fy + x[:, 1:2] / 500
        fz = (fy - x[:, 2:3] / 200).clamp_min(0)   # skimage sets negative Z to 0
        f = torch.cat([fx, fy, fz], dim=1)
        t = torch.where(f > _F_EPS, f.clamp_min(_F_EPS) ** 3, (f - 16 / 116) / _KAPPA)
        white = torch.tensor(_WHITE_D65, device=x.device).view(1, 3, 1, 1)
        linear = _channel_mix(_RGB_FROM_XYZ, t * white)
        rgb = torch.where(linear > 0.0031308,
                          1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
        rgb = rgb.clamp(0, 1)
    return rgb.to(dtype)


def normalize_l(L):
    """L in [0,100] -> gray in [-1,1]."""
    return L / 50 - 1


def denormalize_l(gray):
    """gray in [-1,1] -> L in [0,100]."""
    return (gray + 1) * 50


def normalize_ab(ab):
    """ab in Lab units -> model ab, about [-1,1]."""
    return ab / 110


def denormalize_ab(ab):
    """model ab -> ab in Lab units."""
    return ab * 110


def rgb_uint8_to_model(rgb, dtype=torch.float32):
    """rgb uint8 (N,3,H,W) -> (gray (N,1,H,W) in [-1,1], ab (N,2,H,W) in about [-1,1]).

    Runs wherever `rgb` lives: move the uint8 batch to the training device first, so that the
    conversion is one batched op there and the loader only ships bytes.
    """
    if rgb.dtype != torch.uint8:
        raise TypeError(f"expected a uint8 batch, got {rgb.dtype}")
    lab = rgb_to_lab(rgb.float() / 255)
    return normalize_l(lab[:, :1]).to(dtype), normalize_ab(lab[:, 1:]).to(dtype)


def model_to_lab(gray, ab):
    """gray (N,1,H,W) in [-1,1], ab (N,2,H,W) model units -> lab (N,3,H,W) in Lab units."""
    return torch.cat([denormalize_l(gray.float()), denormalize_ab(ab.float())], dim=1)


def model_to_rgb(gray, ab):
    """gray (N,1,H,W) in [-1,1], ab (N,2,H,W) model units -> rgb float32 (N,3,H,W) in [0,1]."""
    return lab_to_rgb(model_to_lab(gray, ab))


def _check(x, name):
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N,3,H,W), got {tuple(x.shape)}")
