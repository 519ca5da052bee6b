"""The demo's click to select: per uploaded photo, its segmentation (select.segment_photo, made
once and kept for the next clicks), the click view, and each click applied to the mask layer by
select.apply_click. No Gradio and no selection logic of its own: demo.py's handlers call this,
demo_page.py wires the click view's select event to them.

The mask layer is only the editing size (--max-side); the full-resolution mask of the last click
is kept, and colorize uses it while the layer is still exactly its view (full_mask), so a photo
larger than the editing size is coloured to its own edges, as `gan-colorize --select` colours it.
"""
import collections
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data.mask_families import resize_nearest
from .demo_images import gray_view, layer_mask, outlined, save_view, shrink
from .select import (apply_click, check_points, format_points, parse_points, segment_photo,
                     select_mask)

LOG = logging.getLogger("gan_colorize.demo")
KEPT_PHOTOS = 4                 # photos whose segmentation is kept in memory
KEPT_VIEWS = 8                  # click views kept on disk; Gradio copies the files out
SELECTED_TINT = (255, 140, 0)   # the click view shows the selection tinted this colour ...
TINT = 0.45                     # ... by this much


class Selections:
    """Click-to-select state of the photos last clicked on, by upload path. read_photo(path) ->
    uint8 (H,W,3) and view_shape(rgb) -> (h, w) are the demo's; workdir holds the click views."""

    def __init__(self, read_photo, view_shape, workdir):
        self.read_photo, self.view_shape, self.workdir = read_photo, view_shape, Path(workdir)
        self._photos = collections.OrderedDict()

    def entry(self, path):
        """{segmentation, shape (H, W), gray (the view, editing size), mask (full resolution,
        the last click's) or None}, made once per photo path."""
        entry = self._photos.get(path)
        if entry is None:
            rgb = self.read_photo(path)
            start = time.perf_counter()
            entry = {"segmentation": segment_photo(rgb), "shape": rgb.shape[:2],
                     "gray": gray_view(shrink(rgb, *self.view_shape(rgb))), "mask": None}
            LOG.info("segmented %s for click to select in %.2f s", Path(path).name,
                     time.perf_counter() - start)
            self._photos[path] = entry
            while len(self._photos) > KEPT_PHOTOS:
                self._photos.popitem(last=False)
        self._photos.move_to_end(path)
        return entry

    def full_mask(self, path, layer, h, w):
        """The mask layer read at (h, w) (demo_images.layer_mask); while it is exactly the view
        of the last click's mask, that mask, whose edges are the photo's at full resolution."""
        selected = self._photos.get(path, {}).get("mask")
        if layer is not None and selected is not None and selected.shape == (h, w):
            lh, lw = layer.shape[:2]
            if np.array_equal(resize_nearest(selected, lh, lw), layer_mask(layer, lh, lw)):
                return selected
        return layer_mask(layer, h, w)

    def view(self, entry, mask):
        """The click view as a file: the gray photo, the selection tinted and outlined."""
        view = entry["gray"].astype(np.float32)
        on = resize_nearest(mask, *view.shape[:2])
        view[on] = (1 - TINT) * view[on] + TINT * np.asarray(SELECTED_TINT, np.float32)
        f = Path(tempfile.mkdtemp(prefix="select-", dir=self.workdir)) / "select_view.webp"
        save_view(outlined(np.rint(view).astype(np.uint8), on), f)
        for old in sorted(self.workdir.glob("select-*"), key=os.path.getmtime)[:-KEPT_VIEWS]:
            shutil.rmtree(old, ignore_errors=True)
        return str(f)

    def start(self, path):
        """A new photo: segment it -> its click view (nothing selected)."""
        entry = self.entry(path)
        entry["mask"] = None
        return self.view(entry, np.zeros(entry["shape"], bool))

    def click(self, path, layer, clicks, remove, xy):
        """A click at xy = (x, y), pixels of the click view, on the mask layer as it is now
        (brush strokes included); clicks: the earlier ones, `--select` text, which choose the
        region's scale -> (mask bool (H,W), clicks text, message). UserError outside the view."""
        entry = self.entry(path)
        (h, w), (vh, vw) = entry["shape"], entry["gray"].shape[:2]
        x, y = (int(v) for v in xy)
        check_points([(x, y, True)], vh, vw, where="the click view")
        # the photo pixel whose span holds the view pixel's centre (resize_nearest's rule)
        point = ((2 * x + 1) * w // (2 * vw), (2 * y + 1) * h // (2 * vh), not remove)
        points = (parse_points(clicks) if clicks else []) + [point]
        mask = self.full_mask(path, layer, h, w)
        clicks_only = np.array_equal(mask, select_mask(entry["segmentation"], points[:-1]))
        entry["mask"] = apply_click(entry["segmentation"], mask, points, len(points) - 1)
        clicks = format_points(points)
        message = (f"{'removed' if remove else 'added'} the region at {point[0]},{point[1]} "
                   f"(pixels of the photo): the mask covers {100 * entry['mask'].mean():.1f}% of "
                   "it. ")
        message += (f"The same from the command line: `gan-colorize --select '{clicks}'`"
                    if clicks_only else "The mask was painted too: the downloads after Colorize "
                    "hold it exactly.")
        return entry["mask"], clicks, message
