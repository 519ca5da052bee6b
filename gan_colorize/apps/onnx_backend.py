"""ONNX export of a checkpoint's G_ema, and running the exported file with onnxruntime.

    python -m gan_colorize.checkpoint export-onnx CHECKPOINT OUT.onnx
    Colorizer.from_onnx("model.onnx")                 # the torch path's pre- and post-processing
    gan-colorize --backend onnx --checkpoint model.onnx --mask M --out DIR INPUT ...
    OnnxGenerator("model.onnx")(gray, mask)          # numpy in, numpy out; needs no torch

The file holds G_ema in eval mode, float32:
    inputs  gray (N,1,H,W) in [-1,1] (L/50 - 1), mask (N,1,H,W) in {0,1}, and for a checkpoint
            trained with hints (hints.enabled) hint_ab (N,2,H,W) (ab/110 at hinted pixels, 0
            elsewhere) and hint_mask (N,1,H,W) {0,1}
    output  ab (N,2,H,W) in [-1,1] (ab/110)
N, H and W are dynamic; H and W must be multiples of 32 (pad first: the tools pad by reflection,
networks.pad_to_multiple). metadata_props: `gan_colorize.config`, the checkpoint's whole config
as JSON (what Colorizer needs: hints.enabled, data.size), `gan_colorize.format` and
`gan_colorize.step`.

Export: torch.onnx's TorchScript exporter (dynamo=False), opset 17. Both exporters of torch 2.14
export these generators with dynamic sizes and match torch to ~5e-7, but the dynamo exporter
needs onnxscript, one more dependency, and took 7 s against 1 s for a width-0.25 unet11 here;
the TorchScript one is deprecated but present in every torch this package allows (< 2.15).
Opset 17: onnxruntime has had it since 1.13 and nothing in these graphs needs a newer one.
What the graph is made of:
  * GroupNorm (unet11) is written as Reshape -> InstanceNormalization -> Reshape -> Mul -> Add,
    at opset 17 and at 18-20 alike, never as GroupNormalization (new in opset 18, its scale and
    bias redefined in opset 21); InstanceNormalization is as old as ONNX, in every runtime;
  * unet11's layer 11 (networks.UpJoinConv) builds its phase kernel from the conv's weights with
    an einsum, which the exporter's constant folding does not fold: left alone, the graph would
    hold an Einsum redone at every call. The export computes that kernel once
    (networks.FrozenUpJoinConv), so the graph holds it as a constant; pixel_shuffle is
    DepthToSpace (CRD), nearest x2 a Resize;
  * seed: Conv, ConvTranspose, BatchNormalization (running statistics, eval mode).
Every op has an onnxruntime CPU kernel (tests/test_onnx.py runs each generator on it).

This module imports neither torch nor onnx nor onnxruntime at import time: export pulls in torch
and onnx, running pulls in onnxruntime and numpy only; a missing package is a one-line UserError
that says `pip install -e '.[onnx]'`.
"""
import copy
import io
import json
import os
import warnings

import numpy as np

from ..core.atomic import write_atomic
from ..core.config import ConfigError, from_dict
from ..core.errors import UserError

OPSET = 17
INPUTS = ("gray", "mask")
HINT_INPUTS = ("hint_ab", "hint_mask")
OUTPUT = "ab"
CHANNELS = {"gray": 1, "mask": 1, "hint_ab": 2, "hint_mask": 1}
FORMAT = "gan_colorize-onnx/1"
MULTIPLE = 32          # networks.MULTIPLE, repeated so that running needs no torch
INSTALL = "pip install -e '.[onnx]'"


class OnnxModelError(UserError):
    """An ONNX file that cannot be used: missing, unreadable, damaged, or not one of ours."""


def require(module, what):
    """import `module` for `what`, or a one-line UserError saying how to install it."""
    import importlib   # the optional extras (onnx, onnxruntime) load only when asked for
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} needs the {module} package, which is not installed: "
                        f"{INSTALL}") from None


# ---------------------------------------------------------------------------------------------
# export

def export_generator_onnx(generator, config, dst, step=None, opset=OPSET):
    """Write `generator` (networks.Generator; a copy is exported, in eval mode, on the CPU,
    float32) to `dst` as ONNX, atomically, with `config` (a config.Config) in its metadata.
    -> the size of the file in bytes."""
    # deferred, as in export_onnx: running an exported file (OnnxGenerator) must not import torch
    import torch

    from ..model.networks import FrozenUpJoinConv, UpJoinConv
    onnx = require("onnx", "ONNX export")

    g = copy.deepcopy(generator).float().cpu().eval().requires_grad_(False)
    if isinstance(g.out, UpJoinConv):
        g.out = FrozenUpJoinConv(g.out)
    names = INPUTS + (HINT_INPUTS if g.hints else ())
    # batch 2 and H != W, so that no size is 1 or shared when traced (dynamic_axes frees them)
    n, h, w = 2, 2 * MULTIPLE, 3 * MULTIPLE
    example = tuple(torch.zeros(n, CHANNELS[k], h, w) for k in names)
    dynamic = {k: {0: "batch", 2: "height", 3: "width"} for k in names + (OUTPUT,)}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The size checks in Generator.forward turn traced shapes into Python booleans: they hold
        # for the example and are not part of the graph, which is what we want. And the legacy
        # exporter is chosen on purpose (module docstring).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(g, example, buf, input_names=list(names), output_names=[OUTPUT],
                          dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True,
                          dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    model.doc_string = ("gan_colorize generator: " + ", ".join(names) + f" -> {OUTPUT}; "
                        "H and W multiples of 32 (see gan_colorize/onnx_backend.py)")
    meta = {"gan_colorize.format": FORMAT, "gan_colorize.config": json.dumps(config.to_dict())}
    if step is not None:
        meta["gan_colorize.step"] = str(step)
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    write_atomic(dst, data, durable=True)
    return len(data)


def export_onnx(src, dst, opset=OPSET):
    """G_ema of checkpoint `src` (a training checkpoint or an `export`ed one) -> ONNX file `dst`.
    Unusable checkpoint -> CheckpointError; nothing is written then. -> size in bytes."""
    # deferred: running an exported file (OnnxGenerator) must not import torch
    from ..model.checkpoint import CheckpointError, load_generator
    require("onnx", "ONNX export")   # before the checkpoint is read: the cheaper refusal first
    g, cfg, state = load_generator(src, "cpu")
    try:
        return export_generator_onnx(g, cfg, dst, step=state.get("step"), opset=opset)
    except OSError as err:
        raise CheckpointError(f"could not write {dst}: {err.strerror or err}") from None


# ---------------------------------------------------------------------------------------------
# running

def _ort_reason(err):
    """onnxruntime's message as one short line, without its '[ONNXRuntimeError] : 7 :' prefix."""
    line = next((ln.strip() for ln in str(err).splitlines() if ln.strip()), type(err).__name__)
    if line.startswith("[ONNXRuntimeError]"):
        line = line.split(":", 2)[-1].strip()
    return line if len(line) <= 200 else line[:197] + "..."


class OnnxGenerator:
    """An exported generator run by onnxruntime on the CPU, called like networks.Generator:

    gen(gray, mask, hint_ab=None, hint_mask=None) -> ab float32 numpy (N,2,H,W) in [-1,1];
    inputs are arrays (or CPU tensors) of the shapes in the module docstring, H and W multiples
    of 32. A hint model given no hints gets zeros (= none), as the torch generator does.

    .config: the checkpoint's config.Config; .hints: whether it takes hints. threads: onnxruntime
    intra-op threads, 0 = its default (one per physical core). Anything unusable about the file
    -> OnnxModelError (one line)."""

    def __init__(self, path, threads=0):
        ort = require("onnxruntime", "the onnx backend")
        self.path = str(path)
        self._check_file()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3       # errors only: no notes about initializers on stderr
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for every kind of bad file
            raise OnnxModelError(f"{self.path} is not an ONNX model onnxruntime can run, or it is "
                                 f"damaged ({_ort_reason(err)})") from None
        self.config = self._check_interface()
        self.hints = bool(self.config.hints.enabled)
        self.names = INPUTS + (HINT_INPUTS if self.hints else ())

    def _check_file(self):
        """Refusals that need only the first bytes, before onnxruntime's terser ones."""
        if not os.path.isfile(self.path):
            raise OnnxModelError(f"ONNX model not found: {self.path}")
        try:
            with open(self.path, "rb") as f:
                head = f.read(4)
        except OSError as err:
            raise OnnxModelError(f"cannot read {self.path}: {err.strerror or err}") from None
        if not head:
            raise OnnxModelError(f"{self.path} is empty, not an ONNX model")
        if head == b"PK\x03\x04":   # how torch.save files begin: the likeliest wrong file
            raise OnnxModelError(f"{self.path} is a zip archive, as torch checkpoints are, not an "
                                 "ONNX model: run it with --backend torch (Colorizer.from_checkpoint) "
                                 "or export it with python -m gan_colorize.checkpoint export-onnx")

    def _check_interface(self):
        """The inputs, output and metadata of one of our exports -> its Config."""
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        missing = [k for k in INPUTS if k not in inputs] + ([OUTPUT] if OUTPUT not in outputs else [])
        if missing:
            raise OnnxModelError(
                f"{self.path} is not a gan_colorize model: it lacks {', '.join(missing)} (its inputs: "
                f"{', '.join(inputs) or 'none'}; outputs: {', '.join(outputs) or 'none'}); export one "
                "with python -m gan_colorize.checkpoint export-onnx")
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("gan_colorize.format", FORMAT) != FORMAT:
            raise OnnxModelError(f"{self.path} is in format {meta['gan_colorize.format']}, this "
                                 f"version reads {FORMAT}: export it again with this version")
        if "gan_colorize.config" not in meta:
            raise OnnxModelError(f"{self.path} has the inputs of a gan_colorize model but no "
                                 "gan_colorize.config metadata; export it with python -m "
                                 "gan_colorize.checkpoint export-onnx")
        try:
            cfg = from_dict(json.loads(meta["gan_colorize.config"]))
        except (ValueError, ConfigError) as err:
            raise OnnxModelError(f"{self.path}: its gan_colorize.config metadata is not understood "
                                 f"by this version ({' '.join(str(err).split())})") from None
        want = set(INPUTS + (HINT_INPUTS if cfg.hints.enabled else ()))
        if set(inputs) != want:
            raise OnnxModelError(f"{self.path}: inputs {', '.join(inputs)} do not match its config "
                                 f"(hints.enabled {cfg.hints.enabled}: expected {', '.join(sorted(want))})")
        return cfg

    def __call__(self, gray, mask, hint_ab=None, hint_mask=None):
        if not self.hints and (hint_ab is not None or hint_mask is not None):
            raise ValueError("this model was exported without hint inputs (hints.enabled off)")
        gray = np.ascontiguousarray(gray, dtype=np.float32)
        n, _, h, w = gray.shape if gray.ndim == 4 else (0, 0, 0, 0)
        given = {"gray": gray, "mask": mask, "hint_ab": hint_ab, "hint_mask": hint_mask}
        # hints not given: zeros, i.e. none
        feed = {k: np.zeros((n, CHANNELS[k], h, w), np.float32) if k in HINT_INPUTS and given[k] is None
                else np.ascontiguousarray(given[k], dtype=np.float32) for k in self.names}
        for k, a in feed.items():
            if a.shape != (n, CHANNELS[k], h, w):
                raise ValueError(f"{k}: expected shape (N,{CHANNELS[k]},H,W) with gray's N, H, W, "
                                 f"got {a.shape} (gray {feed['gray'].shape})")
        if not (h and w) or h % MULTIPLE or w % MULTIPLE:
            raise ValueError(f"image size {h}x{w} is not a multiple of {MULTIPLE}; pad it first "
                             "(gan_colorize.networks.pad_to_multiple)")
        return self.session.run([OUTPUT], feed)[0]

