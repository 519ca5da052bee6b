"""export-onnx --int8 (apps/quantize.py) on a tiny hint model calibrated on the `samples` photos:
the file runs where the fp32 one runs, keeps its metadata, is really int8 where it should be,
and stays close to fp32. Skipped where the [onnx] extra is missing."""
import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from conftest import colourful, hand_made_checkpoint  # noqa: E402
from gan_colorize.apps import export  # noqa: E402
from gan_colorize.apps.api import Colorizer  # noqa: E402
from gan_colorize.apps.onnx_backend import OnnxGenerator, export_onnx  # noqa: E402
from gan_colorize.apps.quantize import FLOAT_LAYERS, float_convs  # noqa: E402

TINY = ["--model.width", "0.25", "--data.size", "64", "--hints.enabled", "true"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(checkpoint, fp32 .onnx, int8 .onnx), the int8 one written by the command line."""
    tmp = tmp_path_factory.mktemp("int8")
    ck = hand_made_checkpoint(tmp / "hints.pt", *TINY, "--data.cache_dir", tmp / "cache")
    export_onnx(ck, tmp / "fp32.onnx")
    assert export.main(["export-onnx", str(ck), str(tmp / "int8.onnx"), "--int8",
                        "--calib-images", "6"]) == 0
    return ck, tmp / "fp32.onnx", tmp / "int8.onnx"


def _inputs(seed=0, n=2, h=64, w=96):
    g = torch.Generator().manual_seed(seed)
    gray = torch.rand(n, 1, h, w, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, h, w, generator=g) > 0.5).float()
    hint_mask = (torch.rand(n, 1, h, w, generator=g) > 0.97).float() * mask
    hint_ab = (torch.rand(n, 2, h, w, generator=g) - 0.5) * 0.8 * hint_mask
    return [t.numpy() for t in (gray, mask, hint_ab, hint_mask)]


def test_int8_file_keeps_the_interface_and_metadata(files):
    ck, fp32, int8 = files
    gen = OnnxGenerator(int8)
    assert gen.hints and gen.config.to_dict() == OnnxGenerator(fp32).config.to_dict()
    meta = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    q = json.loads(meta["gan_colorize.quantization"])
    assert q["calibration_images"] == 6 and q["format"] == "QDQ"
    assert meta["gan_colorize.step"] == "3"


def test_int8_quantizes_the_convs_but_the_sensitive_ones(files):
    _, fp32, int8 = files
    model = onnx.load(str(int8))
    keep = float_convs(onnx.load(str(fp32)))
    assert {n.lstrip("/").split("/")[0] for n in keep} == set(FLOAT_LAYERS)
    made_by = {o: n.op_type for n in model.graph.node for o in n.output}
    weights = {n.name: made_by.get(n.input[1], "initializer")
               for n in model.graph.node if n.op_type == "Conv"}
    assert all(weights[k] == "initializer" for k in keep)          # float weights, as exported
    quantized = [k for k, v in weights.items() if v == "DequantizeLinear"]
    assert len(quantized) == len(weights) - len(keep) >= 8
    assert q_settings_exclude(model) == keep


def q_settings_exclude(model):
    meta = {p.key: p.value for p in model.metadata_props}
    return json.loads(meta["gan_colorize.quantization"])["excluded_nodes"]


def test_int8_output_is_close_to_fp32_and_runs_in_the_colorizer(files):
    _, fp32, int8 = files
    x = _inputs()
    a, b = OnnxGenerator(fp32)(*x), OnnxGenerator(int8)(*x)
    diff = np.abs(a - b)
    assert a.std() > 0.05 and 0 < diff.mean() < 0.02 and diff.max() < 0.2   # model units (ab/110)
    c8, c32 = Colorizer.from_onnx(int8), Colorizer.from_onnx(fp32)
    img, mask = colourful(70, 90, 5), np.ones((70, 90), bool)
    hints = [(30, 30, (200, 40, 40), 4)]
    out8, out32 = (c.colorize(img, mask, hints=hints).astype(int) for c in (c8, c32))
    assert out8.shape == (70, 90, 3) and np.abs(out8 - out32).mean() < 3


def test_bad_calibration_data_is_a_one_line_error_and_writes_nothing(files, tmp_path, capsys):
    ck, _, _ = files
    for bad in (["--calib-data", f"flowers17={tmp_path / 'nowhere'}:1"],
                ["--calib-data", "nonsense=1"], ["--calib-images", "0"]):
        with pytest.raises(SystemExit) as stop:
            export.main(["export-onnx", str(ck), str(tmp_path / "x.onnx"), "--int8", *bad])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
    assert not list(tmp_path.glob("*.onnx"))
