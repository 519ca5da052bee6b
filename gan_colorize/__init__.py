"""gan_colorize: partial, spatially controlled colorization with a mask-conditioned GAN.

A grayscale image and a binary mask go in; colour comes out only where the mask is 1.
"""
import os

# albumentations checks PyPI for updates on import unless told not to; that call hangs or fails
# on machines without internet, so this must run before any submodule imports it.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
__all__ = ["Colorizer", "segment_photo", "select_mask", "__version__"]


def __getattr__(name):
    # Lazy, so that `import gan_colorize` stays cheap for the CLIs and the data workers.
    if name == "Colorizer":
        from .apps.api import Colorizer
        return Colorizer
    if name in ("select_mask", "segment_photo"):   # click to select (apps/select.py)
        from .apps import select
        return getattr(select, name)
    raise AttributeError(f"module 'gan_colorize' has no attribute {name!r}")
