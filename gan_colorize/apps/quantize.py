"""Int8 ONNX: a checkpoint's G_ema exported (onnx_backend.export_onnx) and quantized statically
with onnxruntime.quantization, calibrated on training crops drawn as in training.

    python -m gan_colorize.checkpoint export-onnx --int8 CHECKPOINT OUT.onnx
    export_int8(checkpoint, "model-int8.onnx", calib_data="flowers17=DIR:1", calib_images=64)

Calibration: the first `calib_images` items of the training loader (data.build_loader, train=True:
random resized crops at data.size, flips, masks from masks.train and, for a hint model, hints
drawn as in training), from the checkpoint's own training data (its data.mix, or data.name and
data.root) or from `calib_data`, a spec in data.mix's grammar (NAME=ROOT:WEIGHT,...). The order
is the loader's, seeded by train.seed: the same images every time.

Quantization (onnxruntime's quant_pre_process, then quantize_static): QDQ format, the convs
only, int8 weights per output channel, uint8 activations whose ranges are the 99.999th
percentiles seen in calibration. uint8 activations with int8 weights is the pair onnxruntime's
CPU kernels fuse into QLinearConv: with int8 activations 11 of unet11's 14 convs stayed
DequantizeLinear -> Conv and the file ran slower than fp32. The convs of FLOAT_LAYERS stay in
float (README, ONNX: each conv's own colour change). The file keeps the fp32 file's inputs,
output and metadata, so OnnxGenerator, Colorizer.from_onnx, `--backend onnx` and the demo run it
unchanged; its metadata adds `gan_colorize.quantization`, which says how it was made.

Whether it is worth it, measured (README, ONNX): bench/inference.py --backend torch,onnx,int8 for
the speed and bench/int8_error.py for the colour change against the fp32 file.
"""
import contextlib
import dataclasses
import io
import json
import os
import tempfile

import numpy as np

from ..core.atomic import write_atomic
from ..core.config import ExportConfig
from ..core.errors import UserError
from ..core.specs import check_roots
from .onnx_backend import CHANNELS, HINT_INPUTS, INPUTS, export_onnx, require

CALIB_IMAGES = ExportConfig.calib_images   # training crops that set the activation ranges
CALIB_BATCH = 8
OPS = ("Conv",)       # op types quantized; None: every type onnxruntime can (README, ONNX)
METHOD = "percentile"  # activation ranges; every conv int8, it moved colours less than minmax
# unet11's layers whose convs stay in float: quantized one at a time on the shipped checkpoint,
# each of these moved colours by 0.6 to 1.7 Lab units, every other conv by 0.3 or less
# (README, ONNX)
FLOAT_LAYERS = ("stem_hint", "down.0", "down.1", "out")


def float_convs(model, layers=FLOAT_LAYERS):
    """The Conv nodes of an exported generator (an onnx ModelProto) that belong to `layers` (the
    exporter names a node /LAYER/..., after the module that made it): those the int8 file keeps
    in float. The seed generator has none of these names: every conv of it is quantized."""
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and n.name.lstrip("/").split("/")[0] in layers]


def calibration_feeds(cfg, n=CALIB_IMAGES, calib_data="", batch=CALIB_BATCH):
    """The generator's inputs for `n` training crops, as onnxruntime feeds: a list of dicts
    {gray, mask[, hint_ab, hint_mask]: float32 (b,C,S,S)}, S = data.size. cfg: the checkpoint's
    config.Config; calib_data: a data.mix spec to draw from instead of cfg's own data."""
    # deferred: torch and the data pipeline, only for quantizing (running the file needs neither)
    import torch

    from ..core import color
    from ..data.dataset import build_loader
    if n < 1:
        raise UserError(f"int8 calibration needs at least one training crop, got {n}")
    own = cfg.data.mix or (cfg.data.name if cfg.data.name == "samples" else
                           f"{cfg.data.name}={cfg.data.root}:1")
    data = dataclasses.replace(cfg.data, workers=0, mix=calib_data or own)
    try:
        check_roots(data.mix)
    except UserError as err:
        raise UserError(f"int8 calibration data {data.mix!r}: {err}; give the training data "
                        "with --calib-data NAME=ROOT:1 (the grammar of data.mix)") from None
    cfg = dataclasses.replace(cfg, data=data,
                              train=dataclasses.replace(cfg.train, batch_size=batch))
    loader, _ = build_loader(cfg, "train", train=True, progress=False)
    names = INPUTS + (HINT_INPUTS if cfg.hints.enabled else ())
    feeds, have = [], 0
    with torch.no_grad():
        for b in loader:
            gray, _ = color.rgb_uint8_to_model(b["rgb"])
            hints = b.get("hints")     # a batched data.hints.Hints for a hint model
            items = {"gray": gray, "mask": b["mask"], "hint_ab": getattr(hints, "ab", None),
                     "hint_mask": getattr(hints, "mask", None)}
            take = min(len(gray), n - have)
            feeds.append({k: np.ascontiguousarray(items[k][:take].numpy(), np.float32)
                          for k in names})
            have += take
            if have >= n:
                return feeds
    raise UserError(f"int8 calibration wanted {n} training crops but the training data gave "
                    f"{have}: lower the count or give more data")


def _reader(feeds):
    """An onnxruntime CalibrationDataReader over a list of feeds."""
    from onnxruntime.quantization import CalibrationDataReader   # the [onnx] extra

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

        def rewind(self):
            self.it = iter(feeds)
    return Reader()


def quantize_file(src, dst, feeds, exclude=None, ops=OPS, method=METHOD, note=""):
    """fp32 ONNX file `src` (export_onnx) -> int8 QDQ file `dst`, written atomically, calibrated
    on `feeds` (calibration_feeds). exclude: node names left in float (None: float_convs); ops:
    the op types quantized (None: all that onnxruntime can); method: the activation ranges,
    minmax, percentile (99.999th) or entropy. The metadata of `src` is kept, plus
    gan_colorize.quantization (these settings and `note`). -> size in bytes."""
    onnx = require("onnx", "int8 export")
    require("onnxruntime", "int8 export")
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,   # extra
                                          quant_pre_process, quantize_static)
    for k, a in feeds[0].items():
        if a.ndim != 4 or a.shape[1] != CHANNELS[k]:
            raise ValueError(f"calibration feed {k}: expected (N,{CHANNELS[k]},H,W), got {a.shape}")
    fp32 = onnx.load(str(src))
    meta = {p.key: p.value for p in fp32.metadata_props}
    exclude = float_convs(fp32) if exclude is None else list(exclude)
    settings = {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8",
                "calibration": method,
                "calibration_images": int(sum(len(f["gray"]) for f in feeds)),
                "op_types": list(ops) if ops else "all", "excluded_nodes": list(exclude),
                "note": note}
    with tempfile.TemporaryDirectory(prefix="gan-colorize-int8-") as tmp, \
            contextlib.redirect_stdout(io.StringIO()):   # the calibrators print their progress
        pre, out = os.path.join(tmp, "pre.onnx"), os.path.join(tmp, "int8.onnx")
        quant_pre_process(str(src), pre, skip_symbolic_shape=True)
        quantize_static(pre, out, _reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(exclude) or None,
                        op_types_to_quantize=list(ops) if ops else None,
                        calibrate_method={"minmax": CalibrationMethod.MinMax,
                                          "percentile": CalibrationMethod.Percentile,
                                          "entropy": CalibrationMethod.Entropy}[method])
        model = onnx.load(out)
    onnx.helper.set_model_props(model, {**meta, "gan_colorize.quantization": json.dumps(settings)})
    data = model.SerializeToString()
    write_atomic(dst, data, durable=True)
    return len(data)


def export_int8(src, dst, calib_data="", calib_images=CALIB_IMAGES, exclude=None):
    """Checkpoint `src` -> int8 ONNX file `dst`: export_onnx, calibration_feeds, quantize_file.
    -> size in bytes."""
    from ..model.checkpoint import load_generator   # deferred: torch, as in export_onnx
    require("onnx", "int8 export")
    require("onnxruntime", "int8 export")
    _, cfg, _ = load_generator(src, "cpu")
    feeds = calibration_feeds(cfg, calib_images, calib_data)
    with tempfile.TemporaryDirectory(prefix="gan-colorize-int8-") as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        export_onnx(src, fp32)
        return quantize_file(fp32, dst, feeds, exclude=exclude,
                             note=f"calibrated on {calib_data or 'the checkpoint training data'}"
                                  f" ({calib_images} crops)")
