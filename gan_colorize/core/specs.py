"""The grammar of the config's weighted lists, checked before any work starts: mask specs
(masks.train, masks.preview, eval.masks; data/masks.py draws from them) and data mixtures
(data.mix; data/mixture.py builds their parts). Both share one grammar, split_spec.

Mask spec grammar (a string, e.g. from the config `masks.train`):

    spec   := entry ("," entry)*
    entry  := family ["=" arg] [":" weight]
    weight := a finite number >= 0 (default 1); the weights must not all be 0

The weight is whatever follows the LAST ':' of an entry, so a file path containing ':' needs an
explicit weight (`file=C:/masks:1`); an arg cannot contain ','. Examples:
`impa:1,brush:1,blobs:0.5`, `impa=0-3`, `file=masks/impa`, `segmentation=random:2,rect`.

Data mixture: `NAME[=ROOT][:WEIGHT],...`, NAME one of DATASETS (see data/mixture.py).
"""
import functools
import math
import os
import re
from typing import NamedTuple

from .errors import UserError

# data.name's datasets (config.CHOICES), the names a data.mix may use
DATASETS = ("samples", "flowers17", "flowers102", "folder", "split_folders", "bsds500")
# the mask families of data/mask_families.py, in its FAMILIES order
MASK_FAMILIES = ("impa", "stripes", "grid", "rect", "brush", "blobs", "superpixels", "regions",
                 "segmentation", "full", "empty", "file")
RANDOM_FAMILIES = ("stripes", "grid", "rect", "brush", "blobs", "superpixels", "regions")
IMAGE_FAMILIES = ("superpixels", "regions")   # drawn from the photo itself
FIXED_FAMILIES = ("impa", "full", "empty", "file")
IMPA_NAMES = ["left", "right", "top", "bottom", "vbands_a", "vbands_b",
              "hbands_a", "hbands_b", "checker_a", "checker_b"]
SEGMENTATION_ARGS = ("foreground", "background", "random")
MASK_EXTS = (".png", ".jpg", ".jpeg")


class MaskSpecError(UserError):
    """A bad mask spec; the message is one line and names the bad part."""


class MixSpecError(UserError):
    """A bad data.mix; the message is one line and names the bad part."""


# ---------------------------------------------------------------------------------------------
# the shared grammar

def split_spec(spec, *, what, noun, known, example, error):
    """The weighted-list grammar shared by mask specs and data mixtures (mixture.py):
    'name[=arg][:weight],...' -> [(entry text, name, arg or None, weight)]. Checks the grammar,
    that each name is in `known`, and the weights (finite, >= 0, not all 0); each problem is an
    `error` (a UserError class) with one line that names the bad part, e.g. "unknown {noun}
    'x' in 'x:1' (known: ...)". The arguments are left to the caller."""
    if not isinstance(spec, str):
        raise error(f"{what} must be a string, got {type(spec).__name__}")
    if not spec.strip():
        raise error(f"empty {what} (e.g. {example!r})")
    out = []
    for n, raw in enumerate(spec.split(",")):
        part = raw.strip()
        if not part:
            raise error(f"empty entry #{n + 1} in {what} {spec!r}")
        head, wtxt = part.rsplit(":", 1) if ":" in part else (part, None)
        name, arg = head.split("=", 1) if "=" in head else (head, None)
        name = name.strip()
        arg = arg.strip() if arg is not None else None
        if name not in known:
            raise error(f"unknown {noun} {name!r} in {part!r} (known: {', '.join(known)})")
        weight = 1.0
        if wtxt is not None:
            try:
                weight = float(wtxt)
            except ValueError:
                weight = float("nan")
            if not math.isfinite(weight) or weight < 0:
                raise error(f"bad weight {wtxt.strip()!r} in {part!r} (want a finite number >= 0)")
        if arg == "":
            raise error(f"empty argument after '=' in {part!r}")
        out.append((part, name, arg, weight))
    if sum(w for *_, w in out) <= 0:
        raise error(f"{what} {spec!r} has no positive weight")
    return out


# ---------------------------------------------------------------------------------------------
# mask specs

class MaskEntry(NamedTuple):
    family: str
    arg: str | None
    weight: float

    @property
    def label(self):
        return self.family if self.arg is None else f"{self.family}={self.arg}"


@functools.lru_cache(maxsize=256)
def parse_impa_arg(arg):
    """'3' | '0-3' | '0;2;5' | 'left;checker_a' | None (all) -> tuple of indices (order kept,
    duplicates dropped). Separator ';' so as not to clash with the spec's ',' and ':'."""
    if arg is None:
        return tuple(range(len(IMPA_NAMES)))
    out = []
    for tok in arg.split(";"):
        tok = tok.strip()
        m = re.fullmatch(r"([0-9]+)(?:-([0-9]+))?", tok)
        if m:
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a
            if not (0 <= a <= b < len(IMPA_NAMES)):
                raise MaskSpecError(f"bad impa index {tok!r} in impa={arg!r} (indices are 0..9)")
            idx = range(a, b + 1)
        elif tok in IMPA_NAMES:
            idx = [IMPA_NAMES.index(tok)]
        else:
            raise MaskSpecError(f"bad impa index {tok!r} in impa={arg!r} (use 0..9, a range like "
                                f"0-3, ';'-separated, or names {','.join(IMPA_NAMES)})")
        out += [k for k in idx if k not in out]
    return tuple(out)


def parse_spec(spec):
    """'impa:1,brush=...:0.5' -> list[MaskEntry]. Checks grammar, family names, args and weights
    (not the file system: MaskSampler does that). Any problem -> MaskSpecError (one line)."""
    entries = []
    for part, fam, arg, weight in split_spec(spec, what="mask spec", noun="mask family",
                                             known=MASK_FAMILIES, example="impa:1,brush:1",
                                             error=MaskSpecError):
        if fam == "impa":
            parse_impa_arg(arg)
        elif fam == "segmentation":
            if arg is not None and arg not in SEGMENTATION_ARGS:
                raise MaskSpecError(f"bad segmentation argument {arg!r} in {part!r} "
                                    f"(use {'|'.join(SEGMENTATION_ARGS)})")
        elif fam == "file":
            if arg is None:
                raise MaskSpecError(f"mask family 'file' needs a path in {part!r}: file=PATH")
        elif arg is not None:
            raise MaskSpecError(f"mask family {fam!r} takes no argument, got {part!r}")
        entries.append(MaskEntry(fam, arg, weight))
    return entries


@functools.lru_cache(maxsize=64)
def list_mask_files(path):
    """A mask file -> [it]; a folder -> its .png/.jpg/.jpeg files (top level, sorted). Cached per
    path for the run; '~' is expanded. Missing path / empty folder -> MaskSpecError."""
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path)
                       if f.lower().endswith(MASK_EXTS) and os.path.isfile(os.path.join(path, f)))
        if not files:
            raise MaskSpecError(f"mask folder {path} has no .png/.jpg/.jpeg files")
        return tuple(files)
    if os.path.isfile(path):
        return (path,)
    raise MaskSpecError(f"mask file or folder {path} does not exist")


def resolve_spec(spec):
    """A mask spec, or a bare path to a mask file or a folder of them -> a MaskSampler spec:
    an existing path (checked first, '~' expanded) becomes 'file=PATH:1' (the explicit weight
    keeps a ':' in the path out of the weight); anything else is returned as it is. Used wherever
    a config spec is read (checks.check, data.build_loader, so evaluation too). colorize.py's
    --mask keeps its own path rules: a folder there is matched to the inputs by file stem."""
    p = os.path.expanduser(str(spec))
    return f"file={spec}:1" if os.path.isdir(p) or os.path.isfile(p) else spec


def check_mask_spec(spec):
    """parse_spec, and every mask file or folder it names must exist -> list[MaskEntry]
    (MaskSampler's check, and checks.check's, before any data worker starts)."""
    entries = parse_spec(spec)
    for e in entries:
        if e.family == "file":
            list_mask_files(e.arg)
    return entries


def is_fixed(entries):
    """True when every entry is a fixed family (pairing=all can enumerate its masks)."""
    return all(e.family in FIXED_FAMILIES for e in entries)


# ---------------------------------------------------------------------------------------------
# data mixtures

def parse_mix(spec):
    """'flowers102=DIR:3,folder=DIR' -> [(name, root, weight)]. Checks the grammar, the names,
    roots (given where needed, not the file system) and weights; -> MixSpecError (one line)."""
    out = []
    for part, name, root, weight in split_spec(spec, what="data mixture", noun="dataset",
                                               known=DATASETS, error=MixSpecError,
                                               example="flowers102=DIR:3,folder=DIR:1"):
        if name == "samples" and root is not None:
            raise MixSpecError(f"dataset 'samples' takes no root, got {part!r}")
        if name != "samples" and root is None:
            raise MixSpecError(f"dataset {name!r} needs its root in {part!r}: {name}=DIR")
        if weight <= 0:
            raise MixSpecError(f"bad weight in {part!r} (a part of a mixture needs a weight > 0)")
        out.append((name, root or "", weight))
    return out


def check_roots(spec):
    """A one-line MixSpecError for the first root of a mixture that is not a folder."""
    for name, root, _ in parse_mix(spec):
        if root and not os.path.isdir(os.path.expanduser(root)):
            raise MixSpecError(f"root {root} of {name} does not exist or is not a folder")
