"""Checkpoints: plain state dicts, written atomically, read back with weights_only=True.

    python -m gan_colorize.checkpoint export CHECKPOINT OUT.pt          # G_ema + config, fp16
    python -m gan_colorize.checkpoint export-onnx CHECKPOINT OUT.onnx   # onnx_backend.py

A checkpoint is a dict of tensors, numbers, strings, lists and dicts, never a pickled module,
so loading one cannot run code. It holds all that an exact resume needs: G, D, G_ema, both
optimizers, the scheduler and grad scaler, the step, the sampler position, the resolved config
and the RNG states of python, numpy and torch (CPU and CUDA).
"""
import os
import pickle
import random
import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..core.atomic import write_atomic
from ..core.config import ConfigError, from_dict, upgrade_dict
from ..core.errors import UserError
from .networks import build_generator


class CheckpointError(UserError):
    """A checkpoint that cannot be used: unreadable, unsafe, or for another model."""


def save(state, path):
    """Write `state` to `path` atomically and durably (atomic.write_atomic): a crash or kill
    leaves the old file or the new one; on any error the previous checkpoint is untouched."""
    try:
        write_atomic(path, writer=lambda f: torch.save(state, f), durable=True)
    except OSError as err:
        raise CheckpointError(f"could not write checkpoint {path}: {err.strerror or err}; "
                              f"the previous checkpoint is intact") from None


def load(path, map_location="cpu"):
    """Read a checkpoint with torch.load(weights_only=True); anything else is refused.

    Every refusal is a one-line CheckpointError of our own. torch's messages are never passed on:
    for a file that is not a checkpoint (an image given as --checkpoint, say) they advise
    re-running torch.load with weights_only=False, which would run whatever code a pickle holds.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    # torch.save writes a zip archive; torch before 1.6 wrote a pickle (protocol 2: \x80\x02)
    is_zip = head.startswith(b"PK\x03\x04")
    if not (is_zip or head.startswith(b"\x80")):
        raise CheckpointError(f"{path} is not a gan_colorize checkpoint ({_looks_like(head)})")
    if is_zip and not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is damaged: an incomplete zip archive (cut short by a copy "
                              f"or a full disk?); use another checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")         # torch's notes on pickle protocols and the like
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found:   # a class or function to import and call: what a checkpoint never holds
            raise CheckpointError(f"refused to load {path}: it holds code (a pickled {found.group(1)}), "
                                  f"not only tensors, numbers and strings; it is not a gan_colorize "
                                  f"checkpoint, and loading it could run that code") from None
        raise CheckpointError(f"{path} is not a gan_colorize checkpoint (a pickle in another "
                              f"format)") from None
    except Exception as err:  # torch raises many types for damaged files; none is passed on
        raise CheckpointError(f"{path} is not a gan_colorize checkpoint, or it is damaged "
                              f"({type(err).__name__} while reading it)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a gan_colorize checkpoint (got {type(state).__name__})")
    return state


_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"BM", "a BMP image"),
          (b"%PDF", "a PDF file"), (b"\x1f\x8b", "a gzip file"))


def _looks_like(head):
    """What the first bytes of a file suggest it is, for an error message."""
    if not head:
        return "the file is empty"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"it is {what}"
    if all(b >= 32 or b in b"\t\n\r" for b in head):
        return "it is text"
    return "unknown binary data"


def describe_mismatch(model, state_dict, limit=8):
    """Lines that say how `state_dict` differs from `model`'s own; empty when they match."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    lines = []
    for title, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            lines.append(f"{title}: {', '.join(items[:limit])}{more}")
    return lines


def load_into(model, state_dict, what, config_diff=()):
    """model.load_state_dict, with an error that lists what differs instead of a long traceback."""
    problems = describe_mismatch(model, state_dict)
    if problems:
        hint = f" (config differs: {'; '.join(config_diff)})" if config_diff else ""
        raise CheckpointError(f"{what} in the checkpoint does not match this model{hint}: "
                              + " | ".join(problems))
    model.load_state_dict(state_dict)


def grow_into(model, state_dict):
    """Load `state_dict` into `model`, where the model may have grown: a tensor of the same shape
    is copied; one whose dim 1 (a conv's input channels) grew is copied into its first channels
    and the new ones set to 0, so the new inputs start with no effect; a parameter the checkpoint
    lacks keeps its own init. Any other difference -> CheckpointError. -> list of the grown and
    kept names."""
    own = model.state_dict()
    changed, bad = [], [k for k in state_dict if k not in own]
    with torch.no_grad():
        for k, v in own.items():
            src = state_dict.get(k)
            if src is None:
                changed.append(f"{k} (new)")
            elif src.shape == v.shape:
                v.copy_(src)
            elif (src.dim() == v.dim() >= 2 and src.shape[0] == v.shape[0]
                  and src.shape[2:] == v.shape[2:] and src.shape[1] < v.shape[1]):
                v.zero_()
                v[:, :src.shape[1]].copy_(src)
                changed.append(f"{k} ({src.shape[1]} -> {v.shape[1]} inputs)")
            else:
                bad.append(f"{k}: checkpoint {tuple(src.shape)} vs model {tuple(v.shape)}")
    if bad:
        raise CheckpointError("cannot grow the model from this checkpoint: " + ", ".join(bad[:8]))
    return changed


def config_diff(saved, current, sections=("model", "hints")):
    """['model.width: 0.5 (checkpoint) vs 1.0 (now)', ...] for the given config sections (of the
    hints section, only what shapes the network: enabled, fill). Old keys of `saved` (a
    checkpoint's config dict) are compared under their new names (config.RENAMED)."""
    saved = upgrade_dict(saved)
    out = []
    for section in sections:
        a, b = saved.get(section, {}), current.get(section, {})
        for key in sorted(set(a) | set(b)):
            if section == "hints" and key not in ("enabled", "fill"):
                continue
            if a.get(key) != b.get(key):
                out.append(f"{section}.{key}: {a.get(key)!r} (checkpoint) vs {b.get(key)!r} (now)")
    return out


def checkpoint_config(state, path):
    """The Config saved in a checkpoint dict; CheckpointError when absent or not understood."""
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path} has no config: not a gan_colorize training checkpoint")
    try:
        return from_dict(state["config"])
    except ConfigError as err:
        raise CheckpointError(f"{path}: its config is not understood by this version "
                              f"({err})") from None


def load_generator(path, device="cpu", state=None):
    """A checkpoint's G_ema, ready for inference.

    -> (generator in eval mode on `device`, Config from the checkpoint, state) where state is the
    loaded checkpoint dict (pass it in when already loaded). Loading is weights-only (`load`);
    the architecture comes from the checkpoint's own config. A training checkpoint without
    g_ema falls back to g, with a warning. Anything unusable -> CheckpointError (a UserError).
    """
    if state is None:
        state = load(path, map_location="cpu")
    cfg = checkpoint_config(state, path)
    key = "g_ema" if "g_ema" in state else "g" if "g" in state else None
    if key is None:
        raise CheckpointError(f"{path} holds no generator weights (no g_ema or g)")
    if key == "g":
        warnings.warn(f"{path} has no g_ema; using the raw generator g", stacklevel=2)
    g = build_generator(cfg.model, cfg.hints)
    load_into(g, state[key], "G_ema" if key == "g_ema" else "G")
    g = g.to(device).eval().requires_grad_(False)
    return g, cfg, state


def rng_state():
    """The RNG states of python, numpy and torch, as weights_only-loadable values."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {"bit_generator": np_state["bit_generator"],
                  "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
                  "pos": int(np_state["state"]["pos"]),
                  "has_gauss": int(np_state["has_gauss"]),
                  "gauss": float(np_state["gauss"])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore what rng_state() returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state({"bit_generator": n["bit_generator"],
                         "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
                         "has_gauss": n["has_gauss"], "gauss": n["gauss"]})
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_generator(src, dst, half=True):
    """Write G_ema of training checkpoint `src` alone (with its config and step) to `dst`: what
    inference needs, a fraction of the size. half=True stores floating tensors as float16;
    loading casts them back to the model's dtype. -> the exported dict."""
    state = load(src)
    if "g_ema" not in state or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{src} is not a gan_colorize training checkpoint (needs g_ema and config)")
    g_ema = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state["g_ema"].items()}
    out = {"format": state.get("format"), "g_ema": g_ema, "config": state["config"],
           "step": state.get("step"), "exported_from": os.path.basename(str(src)),
           "dtype": "float16" if half else "float32"}
    save(out, dst)
    return out
