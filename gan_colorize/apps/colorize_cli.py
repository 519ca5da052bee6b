"""The `gan-colorize` command line (python -m gan_colorize.colorize): the Colorizer API (api.py) on
files and folders.

CLI --mask: a mask file (used for every input), a folder (input STEM takes STEM.png/.jpg/.jpeg,
else STEM_mask.*; an input without one is reported and skipped), or a family spec (masks.py
grammar): input i, its position in the expanded input list (arguments in order, folders walked
in sorted order), gets MaskSampler(spec).sample(H, W, masks.mask_rng(--seed, i), image=rgb) at
full resolution, so the same command always draws the same masks.

CLI --select "x,y;x,y;-x,y" (or a text file of such points, ';' or newlines between them), instead
of --mask: click to select (select.py), the mask of each input is select_mask(photo, points),
the regions of the photo under the clicks (a leading '-' removes), points in pixels of the input
at full resolution. It reproduces a selection made on the demo page, whose message gives the
option. --mask and --select together are refused: the demo's downloaded STEM_mask.png already
holds the selection with whatever was painted over it. An input that a point falls outside of is
reported and skipped.

CLI outputs, in --out, at each input's full resolution: <stem>_color.png, <stem>_mask.png (the
mask used, white = colour) and with --sheet <stem>_sheet.png (gray | mask | output). Files found
inside an input folder keep their sub-folder under --out. An input is never written to: a target
path equal to an input is an error before anything runs. Unreadable inputs (corrupt, empty, not
an image) are reported one line each and skipped; exit status 0 when at least one image was
written, 2 (`error: ...`) when none was or on a usage error.
"""
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.errors import UserError
from ..core.imageio import BadImageError, is_image_file, read_image, read_rgb
from ..core.parser import COLORIZE, cli_main, parse_tool
from ..core.specs import MASK_EXTS, MaskSpecError
from ..data.masks import MaskSampler, mask_rng
from .inputs import DEFAULT_CHECKPOINT, EmptyMaskWarning, empty_mask_message, prepare_mask
from .select import check_points, parse_points, select_mask

INTRO = ("Colorizes images only where a mask says so. Outputs <stem>_color.png and "
         "<stem>_mask.png (and\n<stem>_sheet.png with --sheet) at the input's resolution. "
         "Exit 0 when at least one image was\nwritten; unreadable inputs are reported and skipped. "
         f"Default checkpoint: {DEFAULT_CHECKPOINT}")


def parse_args(argv):
    """-> (cfg.colorize settings, input paths), validated; the one config parser."""
    cfg, inputs = parse_tool(argv, COLORIZE, intro=INTRO)
    c = cfg.colorize
    if c.mask and c.select:
        raise UserError("--mask and --select both given: use one (a mask the demo downloaded "
                        "already holds its selection)")
    if not (c.mask or c.select):
        raise UserError("--mask (or --select) is required (see --help)")
    if not c.out:
        raise UserError("--out is required (see --help)")
    if not inputs:
        raise UserError("no INPUT given: name image files or folders (see --help)")
    return c, inputs


def _collect_inputs(args_inputs, out_dir):
    """-> ([(path, out_subdir)], [error lines]). Folders are walked recursively (sorted, hidden
    entries and the output folder skipped); explicit files are taken whatever their extension."""
    found, errors, seen = [], [], set()
    out_real = os.path.realpath(out_dir)

    def add(path, sub):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            found.append((path, sub))

    for arg in args_inputs:
        if os.path.isdir(arg):
            n0 = len(found)
            for dirpath, dirnames, filenames in os.walk(arg):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                     and os.path.realpath(os.path.join(dirpath, d)) != out_real)
                for f in sorted(filenames):
                    if not f.startswith(".") and is_image_file(f):
                        path = os.path.join(dirpath, f)
                        add(path, os.path.relpath(dirpath, arg))
            if len(found) == n0:
                errors.append(f"skipped {arg}: folder holds no images")
        elif os.path.isfile(arg):
            add(arg, ".")
        else:
            errors.append(f"skipped {arg}: no such file or folder")
    return found, errors


def _targets(inputs, out_dir, sheet):
    """Output paths per input; refuses collisions and writing over an input."""
    in_real = {os.path.realpath(p) for p, _ in inputs}
    by_target, result = {}, []
    for path, sub in inputs:
        stem = Path(path).stem
        base = Path(out_dir) / sub
        t = {"color": base / f"{stem}_color.png", "mask": base / f"{stem}_mask.png"}
        if sheet:
            t["sheet"] = base / f"{stem}_sheet.png"
        for p in t.values():
            real = os.path.realpath(p)
            if real in in_real:
                raise UserError(f"--out {out_dir} would overwrite the input {p}; choose another --out")
            if real in by_target:
                raise UserError(f"inputs {by_target[real]} and {path} would both write {p}; "
                                "rename one or colorize them separately")
            by_target[real] = path
        result.append(t)
    return result


def files_by_stem(folder, exts, suffix):
    """{input stem: file} for the files of `folder` with one of `exts`: STEM.ext, else
    STEM<suffix>.ext (exact stems win). How --mask and --hints folders match the inputs."""
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(exts) and not f.startswith("."))
    by_stem = {}
    for f in names:
        by_stem.setdefault(Path(f).stem, os.path.join(folder, f))
    for f in names:
        stem = Path(f).stem
        if stem.endswith(suffix):
            by_stem.setdefault(stem[:-len(suffix)], os.path.join(folder, f))
    return by_stem


class _HintSource:
    """--hints: an RGBA PNG used for every input, or a folder matched by stem (STEM.png or
    STEM_hints.png); an input without one gets no hints."""

    def __init__(self, spec):
        path = os.path.expanduser(spec)
        self.file = self.by_stem = None
        if os.path.isfile(path):
            self.file = path
        elif os.path.isdir(path):
            self.by_stem = files_by_stem(path, (".png",), "_hints")
            if not self.by_stem:
                raise UserError(f"--hints {spec}: folder holds no .png hint files")
        else:
            raise UserError(f"--hints {spec}: no such file or folder")

    def get(self, path, h, w):
        """-> the Hints at (h, w), or None when this input has no hint file."""
        from ..data.hints import load_hints   # deferred: imports torch
        src = self.file or self.by_stem.get(Path(path).stem)
        return None if src is None else load_hints(src, h, w)


class _MaskSource:
    """--mask: a file (every input), a folder (by stem), or a family spec (seeded per input);
    or --select: click points (every input)."""

    def __init__(self, spec, seed, select=""):
        self.spec, self.seed = spec, seed
        self.file = self.folder = self.sampler = self.points = None
        path = os.path.expanduser(spec)
        if select:
            self.points = _read_points(select)
        elif os.path.isfile(path):
            self.file = path
            self.file_mask = self._read(path, "--mask: ")   # refused before a model is loaded
        elif os.path.isdir(path):
            self.folder, self.by_stem = path, files_by_stem(path, MASK_EXTS, "_mask")
            if not self.by_stem:
                raise UserError(f"--mask {spec}: folder holds no .png/.jpg/.jpeg masks")
        else:
            try:
                self.sampler = MaskSampler(spec)
            except MaskSpecError as err:
                looks_like_path = os.sep in spec or "." in Path(spec).name
                if looks_like_path and "=" not in spec:
                    raise UserError(f"--mask {spec}: no such file or folder") from None
                raise UserError(f"--mask: {err}") from None
            if self.sampler.needs_segmentation:
                raise UserError("--mask: family 'segmentation' needs a dataset's segmentation "
                                "maps; pass mask files instead")

    @staticmethod
    def _read(src, prefix):
        """A mask file -> uint8 (H,W,3); an unreadable one is reported as a mask, not an input."""
        try:
            return read_rgb(src)
        except BadImageError as err:
            raise UserError(f"{prefix}cannot read mask file {src}: {err.reason}") from None

    def get(self, index, path, rgb):
        """-> (raw mask array, its source file or None). UserError when there is none."""
        if self.points is not None:
            check_points(self.points, *rgb.shape[:2], where=f"{path} (--select)")
            return select_mask(rgb, self.points), None
        if self.sampler is not None:
            h, w = rgb.shape[:2]
            m, _ = self.sampler.sample(h, w, mask_rng(self.seed, index), image=rgb)
            return m, None
        if self.file is not None:
            return self.file_mask, self.file
        src = self.by_stem.get(Path(path).stem)
        if src is None:
            stem = Path(path).stem
            raise UserError(f"skipped {path}: no mask for it in {self.folder} "
                            f"(looked for {stem}.png/.jpg/.jpeg or {stem}_mask.*)")
        return self._read(src, f"skipped {path}: "), src


def _read_points(select):
    """--select: the points, or a text file of them -> [(x, y, add)]; UserError, one line."""
    path = os.path.expanduser(select)
    if os.path.isfile(path):
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise UserError(f"--select {select}: cannot read it: {err}") from None
        select = ";".join(text.split())
    try:
        return parse_points(select)
    except UserError as err:
        raise UserError(f"--select: {err}") from None


def _open_colorizer(args, hint_files):
    """The Colorizer of --checkpoint / --backend (torch loads here, after the command line was
    checked, so that --help and a typo answer at once)."""
    from .api import Colorizer   # deferred: imports torch
    colorizer = Colorizer.open(args.checkpoint, args.backend, device=args.device,
                               size=args.size or None, precision=args.precision)
    if hint_files is not None and not colorizer.takes_hints:
        raise UserError("--hints: this checkpoint was trained without colour hints (hints.enabled "
                        "off); drop --hints or use a checkpoint trained with them")
    return colorizer


def _read_chunk(args, inputs, span, masks, hint_files, report):
    """Inputs `span` read with their masks and hints -> ([(i, rgb, mask, hint)], skipped count);
    an unreadable input or mask is reported and skipped."""
    chunk, n_bad = [], 0
    for i in span:
        path = inputs[i][0]
        try:
            rgb, _ = read_image(path)
            raw, src = masks.get(i, path, rgb)
            mask, note = prepare_mask(raw, *rgb.shape[:2])
            hint = hint_files.get(path, *rgb.shape[:2]) if hint_files else None
        except UserError as err:
            msg = str(err)
            report(msg if msg.startswith("skipped ") else f"skipped: {msg}")
            n_bad += 1
            continue
        if note:
            report(f"note: {path}: {note}" + (f" ({src})" if src else ""))
        if not mask.any():
            drawn = (f"--select {args.select}" if args.select
                     else f"--mask {args.mask} --seed {args.seed}")
            report(f"warning: {path}: mask {src or drawn}: {empty_mask_message(raw)}")
        chunk.append((i, rgb, mask, hint))
    return chunk, n_bad


def _colorize_chunk(colorizer, args, chunk, with_hints, report):
    """The chunk's outputs; the API's warnings become one note line each (an empty mask was said
    already, with its file)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = colorizer.colorize_batch(
            [c[1] for c in chunk], [c[2] for c in chunk], composite=args.composite,
            batch_size=args.batch_size, hints=[c[3] for c in chunk] if with_hints else None)
    for w in caught:
        if not issubclass(w.category, EmptyMaskWarning):
            report(f"note: {' '.join(str(w.message).split())}")
    return outs


def _write_outputs(chunk, outs, inputs, targets, report):
    """<stem>_color.png, _mask.png (and _sheet.png) of each output -> (written, failed)."""
    from ..eval.sheets import save_png   # deferred: imports torch
    n_ok = n_bad = 0
    for (i, rgb, mask, _), out in zip(chunk, outs):
        t = targets[i]
        try:
            save_png(out, t["color"])
            save_png((mask * 255).astype(np.uint8), t["mask"])
            if "sheet" in t:
                save_png(sheet(rgb, mask, out), t["sheet"])
        except OSError as err:
            report(f"failed: {inputs[i][0]}: cannot write {t['color']}: {err.strerror or err}")
            n_bad += 1
        else:
            n_ok += 1
    return n_ok, n_bad


@cli_main
def main(argv=None):
    """`gan-colorize --mask SPEC --out DIR [options] INPUT...`; see the module docstring."""
    args, paths = parse_args(sys.argv[1:] if argv is None else argv)
    masks = _MaskSource(args.mask, args.seed, args.select)
    hint_files = _HintSource(args.hints) if args.hints else None
    inputs, errors = _collect_inputs(paths, args.out)
    for line in errors:
        print(line, file=sys.stderr)
    if not inputs:
        raise UserError("no input images found")
    targets = _targets(inputs, args.out, args.sheet)
    try:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {args.out}: cannot create it: {err.strerror or err}") from None

    colorizer = _open_colorizer(args, hint_files)
    n_ok, n_bad = 0, len(errors)
    bar = tqdm(total=len(inputs), desc="colorize", unit="img", dynamic_ncols=True,
               mininterval=0.5 if sys.stderr.isatty() else 10)

    def report(line):
        tqdm.write(line, file=sys.stderr)

    try:
        for start in range(0, len(inputs), args.batch_size):
            span = range(start, min(start + args.batch_size, len(inputs)))
            chunk, bad = _read_chunk(args, inputs, span, masks, hint_files, report)
            n_bad += bad
            bar.update(bad)
            if chunk:
                outs = _colorize_chunk(colorizer, args, chunk, hint_files is not None, report)
                ok, bad = _write_outputs(chunk, outs, inputs, targets, report)
                n_ok, n_bad = n_ok + ok, n_bad + bad
                bar.update(ok + bad)
    finally:
        bar.close()
    print(f"wrote {n_ok} image(s) to {args.out}" + (f"; {n_bad} skipped" if n_bad else ""))
    if n_ok == 0:
        raise UserError(f"no image could be colorized ({n_bad} skipped)")
    return 0


def sheet(rgb, mask, output, gap=4):
    """gray | mask | output at full resolution, `gap` px of white between: rgb uint8 (H,W,3),
    mask float (H,W) {0,1}, output uint8 (H,W,3) -> uint8 (H, 3W+2gap, 3)."""
    import torch   # deferred, as in _open_colorizer: torch loads after the command line is checked

    from ..core.color import normalize_l, rgb_to_lab
    from ..eval.sheets import contact_sheet, sheet_tiles
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    gray = normalize_l(rgb_to_lab(x)[:, :1])
    tiles = sheet_tiles(gray, torch.from_numpy(mask).float()[None, None])[0]
    out = torch.from_numpy(output).permute(2, 0, 1).float() / 255
    return contact_sheet(torch.cat([tiles, out[None]])[None], gap=gap, border=False)


if __name__ == "__main__":
    sys.exit(main())
