import os
import pickle
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from gan_colorize.model import checkpoint
from gan_colorize.apps import export
from gan_colorize.model.checkpoint import CheckpointError
from gan_colorize.core.config import Config, HintsConfig, ModelConfig
from gan_colorize.model.networks import build_generator


def _gen(width=0.25, kind="unet11"):
    return build_generator(ModelConfig(generator=kind, width=width), HintsConfig())


def test_round_trip_restores_weights_and_rng(tmp_path):
    g = _gen()
    state = {"g": g.state_dict(), "step": 7, "config": {"model": {"width": 0.25}},
             "rng": checkpoint.rng_state()}
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint.save(state, tmp_path / "c.pt")
    loaded = checkpoint.load(tmp_path / "c.pt")
    g2 = _gen()
    checkpoint.load_into(g2, loaded["g"], "G")
    for a, b in zip(g.state_dict().values(), g2.state_dict().values()):
        assert torch.equal(a, b)
    assert loaded["step"] == 7
    checkpoint.set_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned > " + os.environ["PWNED_PATH"],))


def test_crafted_pickle_is_refused_and_does_not_run(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PWNED_PATH", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"g": _RunsCode()}, path)   # a real torch checkpoint carrying a code-running pickle
    with pytest.raises(CheckpointError, match=r"holds code \(a pickled posix.system\)"):
        checkpoint.load(path)
    assert not marker.exists()
    # The same file really would run code if loaded unsafely; this keeps the test honest.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_plain_pickle_and_garbage_are_refused(tmp_path):
    (tmp_path / "p.pt").write_bytes(pickle.dumps({"a": 1}))
    (tmp_path / "z.pt").write_bytes(b"")
    (tmp_path / "r.pt").write_bytes(os.urandom(1000))
    for name in ("p.pt", "z.pt", "r.pt"):
        with pytest.raises(CheckpointError):
            checkpoint.load(tmp_path / name)
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.load(tmp_path / "missing.pt")


class _Custom:
    """A class of the caller's: torch.save pickles it as a global to import and call."""

    def __init__(self):
        self.w = torch.zeros(2)


# What torch says and a user must never read: it advises loading with weights_only=False, which
# runs whatever code the file holds.
TORCH_ADVICE = ("weights_only", "torch.load", "trust", "pytorch.org", "file an issue", "GLOBAL",
                "Unsupported", "PytorchStreamReader", "miniz")


def _not_checkpoints(folder):
    """{name: (path, what the message must say)} for files a user may give as --checkpoint."""
    from PIL import Image
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "photo.png")
    (folder / "notes.txt").write_text("step: 1000\nlr: 2e-4\n")
    (folder / "empty.pt").write_bytes(b"")
    checkpoint.save({"g_ema": _gen().state_dict(), "step": 3}, folder / "whole.pt")
    data = (folder / "whole.pt").read_bytes()
    (folder / "cut.pt").write_bytes(data[: len(data) // 2])
    torch.save({"g_ema": {}, "extra": _Custom()}, folder / "custom.pt")
    (folder / "plain.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    return {"png": (folder / "photo.png", "is not a gan_colorize checkpoint (it is a PNG image)"),
            "text": (folder / "notes.txt", "is not a gan_colorize checkpoint (it is text)"),
            "empty": (folder / "empty.pt", "is not a gan_colorize checkpoint (the file is empty)"),
            "truncated": (folder / "cut.pt", "is damaged: an incomplete zip archive"),
            "custom_class": (folder / "custom.pt", f"holds code (a pickled {__name__}._Custom)"),
            "plain_pickle": (folder / "plain.pkl", "is not a gan_colorize checkpoint (a pickle")}


@pytest.mark.parametrize("case", ["png", "text", "empty", "truncated", "custom_class", "plain_pickle"])
def test_not_a_checkpoint_says_so_in_one_line_without_torch_advice(tmp_path, case, recwarn):
    path, says = _not_checkpoints(tmp_path)[case]
    with pytest.raises(CheckpointError) as err:
        checkpoint.load(path)
    msg = str(err.value)
    assert says in msg and str(path) in msg and "\n" not in msg, msg
    assert not [a for a in TORCH_ADVICE if a in msg], msg
    assert not [str(w.message) for w in recwarn if "torch" in str(w.filename)]
    # torch's exception is not chained on either, where a traceback would show its text
    assert err.value.__context__ is None or err.value.__suppress_context__


@pytest.mark.parametrize("tool", ["evaluate", "gan-colorize"])
@pytest.mark.parametrize("case", ["png", "custom_class"])
def test_cli_with_a_non_checkpoint_prints_our_line_only(tmp_path, capsys, tool, case):
    from gan_colorize.apps import colorize_cli as colorize
    from gan_colorize.apps import evaluate_cli
    path, says = _not_checkpoints(tmp_path)[case]
    if tool == "evaluate":
        argv, main = ["--checkpoint", str(path), "--out", str(tmp_path / "ev")], evaluate_cli.main
    else:
        argv = ["--checkpoint", str(path), "--mask", "full", "--out", str(tmp_path / "out"),
                str(tmp_path / "photo.png")]
        main = colorize.main
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert not [a for a in TORCH_ADVICE if a in err], err


def test_other_architecture_lists_what_differs():
    state = _gen(width=0.5).state_dict()
    diff = checkpoint.config_diff({"model": {"width": 0.5}}, {"model": {"width": 0.25}})
    with pytest.raises(CheckpointError) as err:
        checkpoint.load_into(_gen(width=0.25), state, "G", diff)
    msg = str(err.value)
    assert "shape" in msg and "model.width: 0.5 (checkpoint) vs 0.25 (now)" in msg
    with pytest.raises(CheckpointError, match="missing|unexpected"):
        checkpoint.load_into(_gen(kind="seed"), _gen(kind="unet11").state_dict(), "G")


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    checkpoint.save({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="No space left.*previous checkpoint is intact"):
        checkpoint.save({"step": 2}, path)
    monkeypatch.undo()
    assert checkpoint.load(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]   # no temp file left


def test_kill_during_save_never_leaves_a_broken_file(tmp_path):
    """A writer killed with SIGKILL mid-save leaves either the old or the new checkpoint."""
    path = tmp_path / "latest.pt"
    checkpoint.save({"step": 0, "w": torch.zeros(10)}, path)
    code = ("import sys, torch; from gan_colorize import checkpoint\n"
            "for i in range(1, 10**6):\n"
            "    checkpoint.save({'step': i, 'w': torch.full((300_000,), float(i))}, sys.argv[1])\n")
    for delay in (0.3, 0.6, 0.9):
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)])
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        state = checkpoint.load(path)
        assert state["w"].numel() in (10, 300_000)
        assert torch.all(state["w"] == state["step"])


def test_export_keeps_only_g_ema_in_fp16_and_colorizer_loads_it(tmp_path):
    from gan_colorize.apps.api import Colorizer
    from gan_colorize.core.config import Config
    cfg = Config()
    cfg.model.width = 0.25
    torch.manual_seed(0)
    g = build_generator(cfg.model, cfg.hints)
    full = {"g": g.state_dict(), "g_ema": g.state_dict(), "d": {"w": torch.zeros(1000, 100)},
            "config": cfg.to_dict(), "step": 11}
    checkpoint.save(full, tmp_path / "latest.pt")
    assert export.main(["export", str(tmp_path / "latest.pt"), str(tmp_path / "small.pt")]) == 0
    small = checkpoint.load(tmp_path / "small.pt")
    assert set(small) >= {"g_ema", "config", "step"} and "d" not in small and "g" not in small
    floats = [v for v in small["g_ema"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert os.path.getsize(tmp_path / "small.pt") < 0.6 * os.path.getsize(tmp_path / "latest.pt")
    # fp32 compute, so that only the weights' rounding differs (auto is bf16 on some CPUs)
    ref = Colorizer(g.eval(), size=64, precision="fp32")
    half = Colorizer.from_checkpoint(tmp_path / "small.pt", device="cpu", size=64, precision="fp32")
    image = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    mask = np.zeros((64, 96), np.float32)
    mask[:, :48] = 1
    a, b = ref.colorize(image, mask).astype(int), half.colorize(image, mask).astype(int)
    assert np.abs(a - b).max() <= 2   # fp16 weights: the same picture up to rounding


def test_export_refuses_a_file_without_g_ema(tmp_path, capsys):
    checkpoint.save({"g": {}, "step": 1}, tmp_path / "x.pt")
    with pytest.raises(SystemExit) as exc:
        export.main(["export", str(tmp_path / "x.pt"), str(tmp_path / "y.pt")])
    assert exc.value.code == 2
    assert "not a gan_colorize training checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "y.pt").exists()


def test_saved_file_has_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        checkpoint.save({"step": 1}, tmp_path / "c.pt")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "c.pt").st_mode & 0o777) == 0o644


def test_checkpoint_with_the_old_hint_keys_gives_the_same_outputs(tmp_path):
    """A checkpoint written before the hints section (model.hints, model.hint_fill, ...) loads
    into the same network and colours exactly as one written with the new keys."""
    from conftest import hand_made_checkpoint
    from gan_colorize.apps.api import Colorizer
    new = hand_made_checkpoint(tmp_path / "new.pt", "--model.width", "0.25", "--hints.enabled",
                               "true", "--hints.fill", "input", ab_bias=None)
    state = checkpoint.load(new)
    cfg = state["config"]
    hints = cfg.pop("hints")
    cfg["model"].update(hints=hints["enabled"], hint_fill=hints["fill"])
    cfg["masks"]["hint_p"] = hints["train_p"]
    cfg["eval"].update(hints=hints["eval"], baselines=hints["baselines"])
    torch.save(state, tmp_path / "old.pt")
    image = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    mask = np.zeros((64, 96), np.float32)
    mask[:, :60] = 1
    points = [(10, 10, (200, 30, 30), 5), (40, 30, (20, 180, 40), 3)]
    outs = []
    for path in (new, tmp_path / "old.pt"):
        c = Colorizer.from_checkpoint(path, device="cpu", size=64, precision="fp32")
        assert c.takes_hints and c.g.hint_fill == "input"
        outs.append(c.colorize(image, mask, hints=points))
    assert np.array_equal(*outs)
    diff = checkpoint.config_diff(state["config"], checkpoint.checkpoint_config(state, "old").to_dict())
    assert diff == []   # old keys are compared under their new names


def test_shipped_checkpoint_written_with_the_old_keys_is_a_hint_model():
    from gan_colorize.apps.inputs import DEFAULT_CHECKPOINT
    state = checkpoint.load(DEFAULT_CHECKPOINT)
    assert "hints" in state["config"]["model"]         # written before the hints section
    cfg = checkpoint.checkpoint_config(state, DEFAULT_CHECKPOINT)
    assert cfg.hints.enabled and cfg.hints.fill == "input"


def test_export_command_line_is_the_config_parser(tmp_path, capsys):
    """export / export-onnx through the one parser: subcommands, --fp32 as a flag of the export
    section, exactly SRC DST, one-line errors, --help per command and for the tool."""
    from gan_colorize.core.parser import parse_commands
    name, cfg, rest = parse_commands(["export", "--fp32", "a.pt", "b.pt"], export.COMMANDS, "x")
    assert (name, cfg.export.fp32, rest) == ("export", True, ["a.pt", "b.pt"])
    name, cfg, rest = parse_commands(["export-onnx", "a.pt", "b.onnx"], export.COMMANDS, "x")
    assert (name, cfg.export.fp32, rest) == ("export-onnx", False, ["a.pt", "b.onnx"])
    for argv, says in ((["export", "a.pt"], "expected SRC DST, got 1"), (["convert", "a", "b"],
                        "unknown command 'convert' (one of export, export-onnx"), ([], "no command")):
        with pytest.raises(SystemExit) as exc:
            export.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error: ") and says in err and err.count("\n") == 1
    for argv, says in ((["--help"], "export-onnx  G_ema as an ONNX file"),
                       (["export", "--help"], "--export.fp32 False")):
        with pytest.raises(SystemExit) as exc:
            export.main(argv)
        assert exc.value.code == 0 and says in capsys.readouterr().out
    cfg = Config()
    cfg.model.width = 0.25
    checkpoint.save({"g_ema": _gen().state_dict(), "config": cfg.to_dict(), "step": 1},
                    tmp_path / "a.pt")
    assert export.main(["export", "--fp32", str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]) == 0
    assert all(v.dtype == torch.float32 for v in checkpoint.load(tmp_path / "b.pt")["g_ema"].values()
               if v.is_floating_point())
