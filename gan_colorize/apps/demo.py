"""The interactive demo: a local web page to paint where (a mask) and what (colour hints).

    gan-colorize-demo [--checkpoint C] [--device D] [--host 127.0.0.1] [--port 7860] ...
    gan-colorize-demo --backend onnx --checkpoint model.onnx     # onnxruntime, as gan-colorize's
    python -m gan_colorize.demo ...                  # the same

This module holds the handlers: plain functions of numpy arrays and file paths, with no Gradio
in them, so that tests call them directly. `demo_page.py` lays them out as a Gradio page and
serves it; only that module imports gradio, and only when the demo is started.

The page's values, as the handlers see them:

- photo: the path of the uploaded file. The server reads the file itself, with the rules of
  imageio.read_image (EXIF, 16-bit, RGBA, bombs refused from the header), so the output is what
  `gan-colorize` gives for the same file, byte for byte.
- editor: Gradio's ImageEditor value, a dict {"background": uint8 (h,w,3|4) or None, "layers":
  [uint8 (h,w,4), ...], "composite": ...}. The background is the gray photo at the editing size
  (the photo, shrunk so that its longer side is at most --max-side); layers[0] is the mask
  ("where"), layers[1] the hints ("what"; only with a hint-capable checkpoint). A layer's painted
  pixels are those with alpha >= 128, the same rule as a hints PNG (imageio.ALPHA_MIN); a layer
  without any transparent pixel is read as a mask image instead (white = colour, as
  `gan-colorize --mask` reads a file), so API callers may send the mask PNG they would give the
  CLI. Layers may be of any size with the photo's aspect ratio; they are scaled to the photo
  with nearest neighbour.
- click to select (start_selection, click; demo_select.py): a click on the click view, the gray
  photo at the editing size, adds (or removes) the photo's region under it to the mask layer
  by gan_colorize.select_mask's rule; the clicks so far are a `gan-colorize --select` text.

Every handler answers; none raises. Bad input (not an image, truncated, too large, a layer of
another shape, a bad mask spec, a checkpoint that did not load) becomes a one-line message on
the page and a log line; an unexpected error also logs its traceback, on the server only.
"""
import functools
import inspect
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from ..core.imageio import BadImageError, read_image
from ..core.parser import DEMO, cli_main, one_line, parse_tool
from ..core.specs import parse_spec
from ..data.mask_families import resize_nearest
from ..data.masks import MaskSampler, mask_rng
# the images and layers (demo_images.py), also importable from here as before the split
from .demo_images import (check_layer_shape, editing_shape, gray_view, layer_hints,  # noqa: F401
                          layer_mask, mask_layer, outlined, save_view, shrink)
from .demo_select import Selections
from .inputs import EmptyMaskWarning


LOG = logging.getLogger("gan_colorize.demo")
KEPT_REQUESTS = 8     # request folders kept on disk; Gradio copies the files out as it answers
# families a web user may ask for: file= would read server files, segmentation needs a dataset
PRESET_REFUSED = ("file", "segmentation")
INSTALL_HINT = ("the demo needs Gradio, in the demo extra: pip install -e '.[demo]' (in a "
                "checkout) or pip install 'gan_colorize[demo]'")


# ---------------------------------------------------------------------------------------------
# the handlers

def _answering(*fallback):
    """Handler decorator: a UserError becomes `fallback` outputs plus its message (last output),
    and a log line; any other exception the same, its traceback in the log only. A fallback item
    that is a string names one of the handler's arguments, handed back unchanged (the editor, so
    a failed preset leaves the painting as it was)."""
    def wrap(fn):
        params = list(inspect.signature(fn).parameters)

        @functools.wraps(fn)
        def handler(self, *args):
            try:
                return fn(self, *args)
            except UserError as err:
                msg = one_line(err)
                LOG.warning("%s: %s", fn.__name__, msg)
            except Exception as err:   # the page must answer whatever went wrong
                LOG.exception("%s failed", fn.__name__)
                msg = (f"internal error ({type(err).__name__}: {' '.join(str(err).split())}); "
                       "the server log has the details")
            given = dict(zip(params[1:], args))
            outs = tuple(given.get(f) if isinstance(f, str) else f for f in fallback)
            return outs + (f"**error:** {msg}",)
        return handler
    return wrap


class Demo:
    """The demo's state: settings (config.DemoConfig), the Colorizer or why it did not load, and a
    scratch folder for the files offered for download. Handlers return tuples whose last item is
    the message shown on the page (Markdown)."""

    def __init__(self, settings, colorizer=None, load_error=None):
        self.settings = settings
        self.colorizer = colorizer
        self.load_error = load_error
        self.workdir = Path(tempfile.mkdtemp(prefix="gan-colorize-demo-"))
        self.selections = Selections(self.read_photo, self._view_shape, self.workdir)

    @classmethod
    def from_settings(cls, settings):
        """Load the checkpoint; a failure is kept (and logged), so the page can say it."""
        from .api import Colorizer   # deferred: imports torch, after the command line was checked
        colorizer, error = None, None
        try:
            colorizer = Colorizer.open(settings.checkpoint, settings.backend,
                                       device=settings.device, precision=settings.precision)
        except UserError as err:
            error = one_line(err)
        except Exception as err:   # a broken file can fail in torch in many ways
            error = f"{type(err).__name__}: {' '.join(str(err).split())}"
        if error:
            LOG.error("the checkpoint did not load: %s", error)
        return cls(settings, colorizer, error)

    def close(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def takes_hints(self):
        return self.colorizer is not None and self.colorizer.takes_hints

    @property
    def layer_names(self):
        """The editor's layers, in the order the handlers read them."""
        return ("mask", "hints") if self.takes_hints else ("mask",)

    def status(self):
        """One line about the model, for the top of the page."""
        if self.colorizer is None:
            return f"**error:** no model: the checkpoint did not load: {self.load_error}"
        cfg = self.colorizer.config
        what = "mask and colour hints" if self.takes_hints else "mask only (no colour hints)"
        runtime = ", run by onnxruntime" if self.settings.backend == "onnx" else ""
        return (f"model: {self.settings.checkpoint or 'the shipped default checkpoint'} "
                f"({cfg.model.generator}{runtime}, trained at {cfg.data.size} px; takes {what})")

    # -- reading the photo ------------------------------------------------------------------

    def read_photo(self, path):
        """The uploaded file -> uint8 (H,W,3), with the demo's caps; UserError naming the file."""
        if not path:
            raise UserError("upload a photo first")
        name = Path(path).name
        cap = self.settings.max_upload_mb
        try:
            size = os.path.getsize(path)
        except OSError as err:
            raise UserError(f"cannot read {name}: {err.strerror or err}") from None
        if size > cap * 1e6:
            raise UserError(f"{name} is {size / 1e6:.1f} MB, over the limit of {cap:g} MB "
                            "(--max-upload-mb)")
        try:
            rgb, _ = read_image(path, max_pixels=int(self.settings.max_megapixels * 1e6))
        except BadImageError as err:
            raise UserError(f"cannot read {name}: {err.reason}") from None
        return rgb

    def _view_shape(self, rgb):
        return editing_shape(*rgb.shape[:2], self.settings.max_side)

    def _editor(self, rgb, layers):
        """An editor value: the gray photo at the editing size, with these layers."""
        return {"background": gray_view(shrink(rgb, *self._view_shape(rgb))), "layers": layers,
                "composite": None}

    # -- handlers ---------------------------------------------------------------------------

    @_answering(None)
    def load_photo(self, path):
        """photo path (or None) -> (editor value, message). No layers: the page names them."""
        if not path:
            return None, ""
        rgb = self.read_photo(path)
        h, w = rgb.shape[:2]
        vh, vw = self._view_shape(rgb)
        shown = f"; shown and painted at {vw}x{vh}" if (vh, vw) != (h, w) else ""
        what = ("paint the **mask** layer where colour may go (or click to select), and the "
                "**hints** layer with the colour you want there" if self.takes_hints else
                "paint the **mask** layer where colour may go, or click to select")
        LOG.info("photo %s: %dx%d", Path(path).name, w, h)
        return self._editor(rgb, []), f"{Path(path).name}: {w}x{h}{shown}. Now {what}."

    @_answering("editor")
    def preset_mask(self, path, editor, spec, seed):
        """Replace the mask layer with a draw of a mask family spec (masks.py grammar, e.g.
        `impa=0`, `brush`), drawn at the photo's full size from (seed, input 0), as `gan-colorize
        --mask SPEC --seed SEED` draws for its first input; the hints layer is kept."""
        spec = (spec or "").strip()
        if not spec:
            raise UserError("type a mask family, e.g. impa=0, brush, blobs or rect")
        # checked before MaskSampler, which would look at the files a `file=` entry names
        refused = [e.family for e in parse_spec(spec) if e.family in PRESET_REFUSED]
        if refused:
            raise UserError(f"mask family '{refused[0]}' is not offered on this page: it needs "
                            "files on the server; use gan-colorize for it")
        sampler = MaskSampler(spec)    # a MaskSpecError (a UserError) names the bad part
        seed = int(seed or 0)
        if seed < 0:
            raise UserError(f"the seed must be >= 0, got {seed}")
        rgb = self.read_photo(path)
        m, _ = sampler.sample(*rgb.shape[:2], mask_rng(seed, 0), image=rgb)
        vh, vw = self._view_shape(rgb)
        layers = [mask_layer(resize_nearest(m > 0.5, vh, vw))]
        layers += self._kept_hints(editor, vh, vw)
        return self._editor(rgb, layers), f"mask: `{spec}` with seed {seed}"

    @_answering("editor")
    def invert_mask(self, editor):
        """Swap painted and unpainted pixels of the mask layer; the hints layer is kept."""
        h, w = self._editor_shape(editor)
        layers = (editor or {}).get("layers") or []
        on = layer_mask(layers[0], h, w) if layers else np.zeros((h, w), bool)
        return self._with_mask(editor, ~on), "mask inverted"

    @_answering("editor")
    def clear_mask(self, editor):
        """Empty the mask layer; the hints layer is kept."""
        h, w = self._editor_shape(editor)
        return self._with_mask(editor, np.zeros((h, w), bool)), "mask cleared"

    def _editor_shape(self, editor):
        bg = (editor or {}).get("background")
        if bg is None:
            raise UserError("upload a photo first")
        return bg.shape[:2]

    def _kept_hints(self, editor, h, w):
        """The editor's hints layer, for a value that replaces the mask layer: [] or [layer]."""
        if not self.takes_hints:
            return []
        layers = (editor or {}).get("layers") or []
        if len(layers) < 2 or layers[1] is None:
            return [np.zeros((h, w, 4), np.uint8)]
        check_layer_shape(layers[1], h, w, "hints")
        # the browser may send layers at its pixel ratio (2x on a HiDPI screen)
        return [layers[1] if layers[1].shape[:2] == (h, w) else resize_nearest(layers[1], h, w)]

    def _with_mask(self, editor, on):
        layers = [mask_layer(on)] + self._kept_hints(editor, *on.shape)
        return {"background": editor["background"], "layers": layers, "composite": None}

    @_answering(None, None, None)
    def colorize(self, path, editor, hard):
        """(photo path, editor value, composite hard?) -> (input view, output view, [downloads],
        message), all files. Views: WebP images at the editing size, the mask outlined (and on the input,
        the hints in their colour). Downloads, at the photo's full size: STEM_color.png,
        STEM_mask.png and, when hints were painted, STEM_hints.png; with them `gan-colorize
        --mask STEM_mask.png --hints STEM_hints.png [--composite none] STEM.ext` writes the same
        STEM_color.png, byte for byte (the command is in the message)."""
        if self.colorizer is None:
            raise UserError(f"no model: the checkpoint did not load: {self.load_error}")
        start = time.perf_counter()
        rgb = self.read_photo(path)
        h, w = rgb.shape[:2]
        layers = (editor or {}).get("layers") or []
        mask = self.selections.full_mask(path, layers[0] if layers else None, h, w)
        hints = layer_hints(layers[1], h, w) if len(layers) > 1 else None
        notes = []
        if hints is not None and not self.takes_hints:
            notes.append("this checkpoint was trained without colour hints: the hints layer "
                         "was left out")
            hints = None
        if len(layers) > 2:
            notes.append(f"{len(layers) - 2} extra layer(s) left out: layer 1 is the mask, "
                         "layer 2 the hints")
        warning = None
        if not mask.any():
            warning = ("the mask is empty, so nothing is coloured: the output is the gray "
                       "photo, which is the right answer for an empty mask. Paint the mask "
                       "layer where colour should go")
        composite = "hard" if hard else "none"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self.colorizer.colorize(rgb, mask.astype(np.float32), composite=composite,
                                          hints=hints)
        notes += [" ".join(str(c.message).split()) for c in caught
                  if not issubclass(c.category, EmptyMaskWarning)]   # the warning above says it
        vh, vw = self._view_shape(rgb)
        view_mask = resize_nearest(mask, vh, vw)
        view_hints = None if hints is None else resize_nearest(hints, vh, vw)
        views = (outlined(gray_view(shrink(rgb, vh, vw)), view_mask, view_hints),
                 outlined(shrink(out, vh, vw), view_mask))
        folder, files = self._write(Path(path).stem, out, mask, hints)
        view_files = [folder / "input_view.webp", folder / "output_view.webp"]
        for view, f in zip(views, view_files):
            save_view(view, f)
        seconds = time.perf_counter() - start
        LOG.info("colorized %s %dx%d: mask %.1f%%, %s hints, composite %s, %.2f s",
                 Path(path).name, w, h, 100 * mask.mean(),
                 0 if hints is None else int((hints[..., 3] > 0).sum()), composite, seconds)
        lines = [f"done in {seconds:.2f} s: {w}x{h}."]
        lines += [f"**warning:** {warning}."] if warning else []
        lines += [f"note: {n}." for n in notes]
        lines.append("The same from the command line, with the downloaded files: `"
                     + self.command(Path(path).name, [Path(f).name for f in files[1:]], composite)
                     + "`")
        return str(view_files[0]), str(view_files[1]), [str(f) for f in files], "\n\n".join(lines)

    # -- click to select (demo_select.py; the selection itself is select.py's) --------------

    def start_selection(self, path):
        """photo path -> (click view or None, clicks ''): segments a new photo once, for its
        clicks. Never raises: a photo that cannot be read was said by load_photo already."""
        try:
            return (self.selections.start(path) if path else None), ""
        except UserError:
            return None, ""
        except Exception:   # the page must answer whatever went wrong
            LOG.exception("start_selection failed")
            return None, ""

    @_answering("editor", None, "clicks")
    def click(self, path, editor, clicks, remove, xy):
        """A click at xy = (x, y) on the click view: add (remove False) or take away the photo's
        region there, on the mask layer as it is now -> (editor, click view, clicks, message);
        clicks: the clicks so far as `gan-colorize --select` takes them."""
        if not path:
            raise UserError("upload a photo first")
        entry = self.selections.entry(path)
        layers = (editor or {}).get("layers") or []
        mask, clicks, message = self.selections.click(path, layers[0] if layers else None,
                                                      clicks, remove, xy)
        vh, vw = entry["gray"].shape[:2]
        layers = [mask_layer(resize_nearest(mask, vh, vw))] + self._kept_hints(editor, vh, vw)
        value = {"background": entry["gray"], "layers": layers, "composite": None}
        return value, self.selections.view(entry, mask), clicks, message

    def _write(self, stem, out, mask, hints):
        """The downloads, in a fresh request folder -> (folder, [color, mask(, hints)] paths)."""
        from ..eval.sheets import save_png   # deferred: imports torch
        for old in sorted(self.workdir.glob("request-*"), key=os.path.getmtime)[:-KEPT_REQUESTS + 1]:
            shutil.rmtree(old, ignore_errors=True)
        folder = Path(tempfile.mkdtemp(prefix="request-", dir=self.workdir))
        files = [folder / f"{stem}_color.png", folder / f"{stem}_mask.png"]
        save_png(out, files[0])
        save_png(mask.astype(np.uint8) * 255, files[1])
        if hints is not None:
            files.append(folder / f"{stem}_hints.png")
            save_png(hints, files[2])
        return folder, files

    def command(self, photo_name, extra_names, composite):
        """The gan-colorize command that redoes a colorization from the downloaded files."""
        s = self.settings
        words = ["gan-colorize"]
        if s.backend != "torch":
            words += ["--backend", s.backend]
        if s.checkpoint:
            words += ["--checkpoint", s.checkpoint]
        if s.device != "auto":
            words += ["--device", s.device]
        if s.precision != "auto":
            words += ["--precision", s.precision]
        words += ["--mask", extra_names[0]]
        if len(extra_names) > 1:
            words += ["--hints", extra_names[1]]
        if composite != "hard":     # gan-colorize's default is hard
            words += ["--composite", composite]
        return " ".join(shlex.quote(w) for w in words + ["--out", "out/", photo_name])


# ---------------------------------------------------------------------------------------------
# the command

INTRO = ("Serves the interactive demo: upload a photo, paint where colour goes (and, with a "
         "hint-capable\ncheckpoint, what colour), see the result and download it. Listens on "
         "127.0.0.1 unless --host says\notherwise. Needs the demo extra: pip install -e '.[demo]'.")


def parse_args(argv):
    """-> the validated demo settings (config.DemoConfig); the one config parser."""
    cfg, _ = parse_tool(argv, DEMO, intro=INTRO)
    return cfg.demo


def require_gradio():
    """Import gradio or say, in one line, what to install."""
    try:
        import gradio   # optional extra: pip install -e '.[demo]'
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return gradio


@cli_main
def main(argv=None):
    """`gan-colorize-demo [--section.key value ...]`: serve until Ctrl-C."""
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    require_gradio()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)   # one line per HTTP call otherwise
    from .demo_page import serve   # imports gradio, the optional extra
    demo = Demo.from_settings(settings)
    try:
        serve(demo)
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
