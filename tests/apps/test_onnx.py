"""ONNX export (python -m gan_colorize.checkpoint export-onnx) and the onnx backend
(onnx_backend.OnnxGenerator, Colorizer.from_onnx, gan-colorize --backend onnx), on tiny models.

Skipped where the [onnx] extra is missing; the [test] extra includes it, so CI runs these."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from conftest import colourful, hand_made_checkpoint  # noqa: E402
from gan_colorize.apps import export  # noqa: E402
from gan_colorize.apps import api, colorize_cli, inputs
from gan_colorize.model.checkpoint import load_generator  # noqa: E402
from gan_colorize.apps.api import Colorizer  # noqa: E402
from gan_colorize.core.config import ConfigError  # noqa: E402
from gan_colorize.core.errors import UserError  # noqa: E402
from gan_colorize.apps.onnx_backend import OPSET, OnnxGenerator, OnnxModelError, export_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model.width", "0.25", "--data.size", "64"]
MODELS = {"unet11": [], "hints": ["--hints.enabled", "true"], "seed": ["--model.generator", "seed"],
          "fill": ["--hints.enabled", "true", "--hints.fill", "residual"]}
AB_TOL = 1e-3        # model units (ab/110): the parity bound


def _seed_checkpoint(path):
    """The seed generator has no output bias to set (hand_made_checkpoint); its BatchNorms get
    random running statistics instead, so that eval-mode normalisation is really exported."""
    hand_made_checkpoint(path, *TINY, *MODELS["seed"], ab_bias=None)
    state = torch.load(path, weights_only=True)
    gen = torch.Generator().manual_seed(1)
    for k, v in state["g_ema"].items():
        if k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=gen) * 0.2)
        elif k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=gen) + 0.5)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: (checkpoint, exported .onnx)} for unet11, unet11 with hints and seed."""
    tmp = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, argv in MODELS.items():
        ck = tmp / f"{name}.pt"
        if name == "seed":
            _seed_checkpoint(ck)
        else:
            hand_made_checkpoint(ck, *TINY, *argv)
        if name == "fill":   # open the residual path (its gain starts at 0), so it is exported
            state = torch.load(ck, weights_only=True)
            state["g_ema"]["fill_gain"].fill_(0.7)
            torch.save(state, ck)
        export_onnx(ck, tmp / f"{name}.onnx")
        out[name] = ck, tmp / f"{name}.onnx"
    return out


def _inputs(n, h, w, hints, seed=0):
    g = torch.Generator().manual_seed(seed)
    gray = torch.rand(n, 1, h, w, generator=g) * 2 - 1
    mask = (torch.rand(n, 1, h, w, generator=g) > 0.5).float()
    if not hints:
        return gray, mask
    hint_mask = (torch.rand(n, 1, h, w, generator=g) > 0.95).float()
    return gray, mask, (torch.rand(n, 2, h, w, generator=g) - 0.5) * 0.8 * hint_mask, hint_mask


def test_exported_graph_inputs_ops_and_metadata(models):
    ck, path = models["hints"]
    m = onnx.load(str(path))
    assert m.opset_import[0].version == OPSET
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in list(m.graph.input) + list(m.graph.output)}
    assert dims == {"gray": ["batch", 1, "height", "width"], "mask": ["batch", 1, "height", "width"],
                    "hint_ab": ["batch", 2, "height", "width"],
                    "hint_mask": ["batch", 1, "height", "width"], "ab": ["batch", 2, "height", "width"]}
    ops = {n.op_type for n in m.graph.node}
    # GroupNorm as InstanceNormalization; layer 11's phase kernel a constant, not an Einsum
    assert "InstanceNormalization" in ops and "DepthToSpace" in ops
    assert not ops & {"Einsum", "GroupNormalization"}
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["gan_colorize.config"]) == torch.load(ck, weights_only=True)["config"]
    assert meta["gan_colorize.step"] == "3"
    seed_ops = {n.op_type for n in onnx.load(str(models["seed"][1])).graph.node}
    assert {"ConvTranspose", "BatchNormalization"} <= seed_ops


@pytest.mark.parametrize("size", [(64, 96), (256, 256)])
@pytest.mark.parametrize("name", list(MODELS))
def test_onnxruntime_matches_torch_fp32(models, name, size):
    ck, path = models[name]
    g, _, _ = load_generator(ck)
    gen = OnnxGenerator(path)
    x = _inputs(2, *size, hints=gen.hints)
    with torch.no_grad():
        ref = g(*x).numpy()
    out = gen(*x)
    assert out.shape == ref.shape == (2, 2, *size) and out.dtype == np.float32
    assert ref.std() > 0.05                     # a real signal, not a constant that trivially agrees
    assert np.abs(out - ref).max() < AB_TOL


def test_onnx_generator_defaults_hints_and_checks_shapes(models):
    ck, path = models["hints"]
    g, _, _ = load_generator(ck)
    gen = OnnxGenerator(path)
    gray, mask = _inputs(1, 64, 64, hints=False)
    with torch.no_grad():
        ref = g(gray, mask).numpy()            # no hints = zeros, in both
    assert np.abs(gen(gray, mask) - ref).max() < AB_TOL
    with pytest.raises(ValueError, match="multiple of 32"):
        gen(np.zeros((1, 1, 50, 64)), np.zeros((1, 1, 50, 64)))
    with pytest.raises(ValueError, match="mask"):
        gen(np.zeros((1, 1, 64, 64)), np.zeros((2, 1, 64, 64)))
    with pytest.raises(ValueError, match="without hint inputs"):
        OnnxGenerator(models["unet11"][1])(gray, mask, *_inputs(1, 64, 64, hints=True)[2:])


NO_TORCH = """
import sys
import numpy as np
import onnxruntime as ort
x = np.load(sys.argv[2])
# the file alone, with onnxruntime and nothing of ours
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
plain = sess.run(["ab"], {"gray": x["gray"], "mask": x["mask"]})[0]
# and through the package's own loader, which must not need torch either
from gan_colorize.apps.onnx_backend import OnnxGenerator
ours = OnnxGenerator(sys.argv[1])(x["gray"], x["mask"])
np.savez(sys.argv[3], plain=plain, ours=ours)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""


def test_exported_file_runs_where_torch_is_not_imported(models, tmp_path):
    ck, path = models["unet11"]
    gray, mask = _inputs(1, 64, 96, hints=False)
    np.savez(tmp_path / "x.npz", gray=gray.numpy(), mask=mask.numpy())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, str(path), str(tmp_path / "x.npz"),
                           str(tmp_path / "y.npz")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]
    y = np.load(tmp_path / "y.npz")
    g, _, _ = load_generator(ck)
    with torch.no_grad():
        ref = g(gray, mask).numpy()
    for out in (y["plain"], y["ours"]):
        assert np.abs(out - ref).max() < AB_TOL


def _half(h, w):
    m = np.zeros((h, w), bool)
    m[:, : w // 2] = True
    return m


@pytest.mark.parametrize("name", list(MODELS))
def test_colorizer_from_onnx_equals_the_torch_colorizer(models, name):
    ck, path = models[name]
    by_torch = Colorizer.from_checkpoint(ck, device="cpu", precision="fp32")
    by_onnx = Colorizer.from_onnx(path)
    takes_hints = name in ("hints", "fill")
    assert by_onnx.size == by_torch.size == 64 and by_onnx.takes_hints == takes_hints
    images = [colourful(75, 110, 1), colourful(64, 64, 2)[..., 0]]   # odd size (padded), gray
    masks = [_half(75, 110), np.ones((64, 64), bool)]
    hints = [[(20, 30, (255, 0, 0), 5)], None] if takes_hints else None
    for composite in ("none", "hard"):
        a = by_torch.colorize_batch(images, masks, composite=composite, hints=hints)
        b = by_onnx.colorize_batch(images, masks, composite=composite, hints=hints)
        for x, y in zip(a, b):
            assert x.shape == y.shape and np.abs(x.astype(int) - y.astype(int)).max() <= 1


def test_cli_backend_onnx_writes_what_the_torch_backend_writes(models, tmp_path):
    from PIL import Image
    ck, path = models["unet11"]
    Image.fromarray(colourful(70, 90, 3)).save(tmp_path / "photo.png")
    common = ["--mask", "impa=0", str(tmp_path / "photo.png")]
    assert colorize_cli.main(["--checkpoint", str(ck), "--precision", "fp32",
                          "--out", str(tmp_path / "t"), *common]) == 0
    assert colorize_cli.main(["--backend", "onnx", "--checkpoint", str(path),
                          "--out", str(tmp_path / "o"), *common]) == 0
    a, b = (np.asarray(Image.open(tmp_path / d / "photo_color.png")) for d in ("t", "o"))
    assert a.shape == b.shape == (70, 90, 3) and np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.parametrize("argv,key", [
    (["--backend", "onnx"], "colorize.checkpoint (--checkpoint): '' must name an .onnx file"),
    (["--checkpoint", "m.onnx"], "is an ONNX file: run it with --backend onnx"),
    (["--backend", "onnx", "--checkpoint", "m.onnx", "--device", "cuda"], "colorize.device"),
    (["--backend", "onnx", "--checkpoint", "m.onnx", "--precision", "bf16"], "colorize.precision"),
    (["--backend", "tensorrt", "--checkpoint", "m.onnx"], "colorize.backend"),
])
def test_backend_settings_are_checked_before_anything_runs(argv, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")):
        colorize_cli.parse_args([*argv, "--mask", "full", "--out", "o", "x.png"])


def _foreign_onnx(path):
    """A valid ONNX model that is not ours: input x, output y."""
    h = onnx.helper
    x = h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "foreign", [x], [y])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", OPSET)]), str(path))
    return path


def _bad_files(folder, exported):
    """{name: (path, what the one-line message must say)}."""
    data = exported.read_bytes()
    (folder / "truncated.onnx").write_bytes(data[: len(data) // 3])
    (folder / "random.onnx").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "empty.onnx").write_bytes(b"")
    stripped = onnx.load(str(exported))
    del stripped.metadata_props[:]
    onnx.save(stripped, str(folder / "no_meta.onnx"))
    return {
        "foreign": (_foreign_onnx(folder / "foreign.onnx"),
                    "is not a gan_colorize model: it lacks gray, mask, ab (its inputs: x; outputs: y)"),
        "no_meta": (folder / "no_meta.onnx", "no gan_colorize.config metadata"),
        "truncated": (folder / "truncated.onnx", "not an ONNX model onnxruntime can run, or it is damaged"),
        "random": (folder / "random.onnx", "not an ONNX model onnxruntime can run, or it is damaged"),
        "empty": (folder / "empty.onnx", "is empty, not an ONNX model"),
        "missing": (folder / "missing.onnx", "ONNX model not found"),
    }


def test_foreign_and_damaged_files_are_one_line_errors(models, tmp_path, capsys):
    ck, exported = models["unet11"]
    bad = _bad_files(tmp_path, exported)
    bad["torch"] = (ck, "is a zip archive, as torch checkpoints are, not an ONNX model")
    for name, (path, says) in bad.items():
        with pytest.raises(OnnxModelError) as err:
            Colorizer.from_onnx(path)
        msg = str(err.value)
        assert says in msg and "\n" not in msg and len(msg) < 400, (name, msg)
    # the CLI prints it as `error: ...`, one line, exit status 2
    photo = tmp_path / "p.png"
    from PIL import Image
    Image.fromarray(colourful(40, 40)).save(photo)
    with pytest.raises(SystemExit) as ex:
        colorize_cli.main(["--backend", "onnx", "--checkpoint", str(bad["foreign"][0]), "--mask", "full",
                       "--out", str(tmp_path / "out"), str(photo)])
    assert ex.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: ") and bad["foreign"][1] in lines[-1]


def test_export_onnx_cli_writes_atomically_and_refuses_bad_checkpoints(models, tmp_path, capsys):
    ck, _ = models["seed"]
    assert export.main(["export-onnx", str(ck), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert OnnxGenerator(tmp_path / "m.onnx").config.model.generator == "seed"
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    for src in (tmp_path / "notes.txt", tmp_path / "missing.pt"):
        with pytest.raises(SystemExit) as exc:
            export.main(["export-onnx", str(src), str(tmp_path / "x.onnx")])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "notes.txt"]   # no temp files


def test_core_imports_no_onnx_and_a_missing_extra_is_one_line(models, monkeypatch):
    code = ("import sys, gan_colorize.apps.colorize_cli, gan_colorize.apps.api, gan_colorize.apps.export, gan_colorize.apps.onnx_backend; "
            "print(sorted(m for m in ('onnx', 'onnxruntime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr[-2000:]
    ck, path = models["unet11"]
    for module in ("onnxruntime", "onnx"):
        monkeypatch.setitem(sys.modules, module, None)   # import fails, as if not installed
    with pytest.raises(UserError, match=r"needs the onnxruntime package.*pip install -e '\.\[onnx\]'"):
        Colorizer.from_onnx(path)
    with pytest.raises(UserError, match=r"needs the onnx package.*pip install -e '\.\[onnx\]'"):
        export_onnx(ck, path.with_name("never.onnx"))


@pytest.mark.parametrize("name", ["unet11", "hints"])
def test_demo_on_onnx_colours_as_the_demo_on_torch(models, name, tmp_path):
    """gan-colorize-demo --backend onnx: the same handler, the network run by onnxruntime."""
    from PIL import Image
    from gan_colorize.apps.demo import Demo
    from gan_colorize.core.config import DemoConfig
    ck, path = models[name]
    photo = tmp_path / "photo.png"
    Image.fromarray(colourful(60, 80, 4)).save(photo)
    layers = [np.zeros((60, 80, 4), np.uint8)]
    layers[0][10:50, 5:60] = 255
    if name == "hints":
        layers.append(np.zeros((60, 80, 4), np.uint8))
        layers[1][20:24, 20:24] = (30, 200, 40, 255)
    value = {"background": None, "layers": layers, "composite": None}
    outs = {}
    for backend, checkpoint in (("torch", ck), ("onnx", path)):
        demo = Demo.from_settings(DemoConfig(checkpoint=str(checkpoint), backend=backend,
                                             device="cpu", precision="fp32"))
        try:
            assert demo.colorizer is not None, demo.load_error
            assert demo.takes_hints == (name == "hints")
            *_, files, message = demo.colorize(str(photo), value, False)
            assert not message.startswith("**error"), message
            outs[backend] = np.asarray(Image.open(files[0]))
            if backend == "onnx":
                assert "onnxruntime" in demo.status()
                assert f"gan-colorize --backend onnx --checkpoint {path} " in message
        finally:
            demo.close()
    a, b = (outs[k].astype(int) for k in ("torch", "onnx"))
    assert a.shape == b.shape == (60, 80, 3) and np.abs(a - b).max() <= 1
    assert np.abs(a[10:50, 5:60].std(-1)).mean() > 1     # coloured: not a trivial gray match


def test_demo_backend_settings_are_checked_like_gan_colorize():
    from gan_colorize.apps import demo as demo_mod
    for argv, says in ((["--backend", "onnx"], "demo.checkpoint (--checkpoint): '' must name"),
                       (["--checkpoint", "m.onnx"], "is an ONNX file: run it with --backend onnx"),
                       (["--backend", "onnx", "--checkpoint", "m.onnx", "--device", "cuda"],
                        "demo.device"),
                       (["--backend", "onnx", "--checkpoint", "m.onnx", "--precision", "bf16"],
                        "demo.precision")):
        with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
            demo_mod.parse_args(argv)
    assert demo_mod.parse_args(["--backend", "onnx", "--checkpoint", "m.onnx"]).backend == "onnx"
