import json
import subprocess
import sys
from pathlib import Path

import pytest

from gan_colorize.core.config import (CONFIG_DIR, REFUSED, RENAMED, Config, ConfigError, from_dict,
                                     save_config, upgrade_dict)
from gan_colorize.core.parser import load_config, parse_command_line

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_validate_and_overrides_apply():
    cfg = load_config(["--train.lr_g", "3e-4", "--data.size=96", "--model.spectral_norm", "on",
                       "--resume", "auto"])
    assert cfg.train.lr_g == 3e-4 and cfg.data.size == 96
    assert cfg.model.spectral_norm is True and cfg.train.resume == "auto"


@pytest.mark.parametrize("preset", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_every_preset_loads(preset):
    cfg = load_config(["--config", preset], check_paths=False)
    assert cfg.preset == preset


def test_seed_preset_is_the_studys_recipe():
    cfg = load_config(["--config", "seed"], check_paths=False)
    assert (cfg.data.size, cfg.train.batch_size, cfg.train.lr_g) == (224, 12, 1e-4)
    assert (cfg.train.beta1, cfg.train.beta2) == (0.5, 0.999)
    assert cfg.model.generator == "seed" and cfg.masks.pairing == "all"
    assert cfg.loss.real_target == "full" and cfg.loss.l1_weight == 0
    # impa masks cover half the image: 500 per region == 1000 x the whole-image mean.
    assert cfg.loss.mask_weight_in + cfg.loss.mask_weight_out == 1000


@pytest.mark.parametrize("argv, key", [
    (["--train.lr", "1"], "train.lr"),                          # unknown key
    (["--nosuch.key", "1"], "nosuch.key"),                      # unknown section
    (["--train.steps", "ten"], "train.steps"),                  # wrong type
    (["--train.lr_g", "-1e-4"], "train.lr_g"),                  # negative learning rate
    (["--data.size", "100"], "data.size"),                      # not a multiple of 32
    (["--masks.train", ""], "masks.train"),                     # empty mixture
    (["--masks.train", "impa:1,bogus:2"], "masks.train"),       # unknown family
    (["--data.name", "flowers17", "--data.root", "/no/such/dir"], "data.root"),
    (["--model.generator", "resnet"], "model.generator"),       # not a choice
    (["--model.spectral_norm", "maybe"], "model.spectral_norm"),
    (["--masks.pairing", "all", "--masks.train", "brush:1"], "masks.pairing"),
    (["--data.val_fraction", "0.5", "--data.test_fraction", "0.5"], "data.test_fraction"),
    (["--eval.masks", "no/such/folder"], "eval.masks"),
    (["--config", "no_such_preset"], "--config"),
    (["--train.steps"], "--train.steps"),                       # missing value
])
def test_errors_name_the_key(argv, key):
    with pytest.raises(ConfigError) as err:
        load_config(argv)
    msg = str(err.value)
    assert key in msg and "\n" not in msg


def test_mask_files_and_folders_resolve_like_specs(tmp_path):
    from PIL import Image
    empty = tmp_path / "empty"
    empty.mkdir()
    for key in ("--eval.masks", "--masks.preview", "--masks.train"):
        with pytest.raises(ConfigError, match=f"{key[2:]}: mask folder .* has no .png"):
            load_config([key, str(empty)])
    folder = tmp_path / "masks"
    folder.mkdir()
    Image.new("L", (8, 8), 255).save(folder / "full.png")
    cfg = load_config(["--eval.masks", str(folder), "--masks.preview", str(folder / "full.png"),
                       "--masks.train", str(folder), "--masks.pairing", "all"])  # file is fixed
    assert cfg.eval.masks == str(folder)  # the config keeps what the user wrote


def test_renamed_key_names_the_new_one_but_saved_configs_still_load(tmp_path):
    """masks.eval (the training-time sample grid) became masks.preview, apart from eval.masks."""
    with pytest.raises(ConfigError, match=r"^masks.eval: this key is now masks.preview$"):
        load_config(["--masks.eval", "brush:1"])
    path = tmp_path / "old.yaml"
    path.write_text("masks:\n  eval: brush:1\n")
    with pytest.raises(ConfigError, match="masks.eval: this key is now masks.preview"):
        load_config(["--config", str(path)])
    old = Config().to_dict()
    old["masks"]["eval"] = old["masks"].pop("preview").replace("impa:1", "brush:1")
    assert from_dict(old).masks.preview == "brush:1"     # a checkpoint written before the rename


# a value for each key that has an old name: (text as typed, value in the Config)
RENAMED_VALUES = {"masks.preview": ("brush:1", "brush:1"), "hints.enabled": ("true", True),
                  "hints.fill": ("input", "input"), "hints.train_p": ("0.25", 0.25),
                  "hints.eval": ("0,2,5", "0,2,5"), "hints.baselines": ("mean,levin", "mean,levin")}


def _get(cfg, key):
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


@pytest.mark.parametrize("old", sorted(set(RENAMED) - set(REFUSED)))
def test_every_renamed_key_still_sets_its_new_key(old, tmp_path):
    """The hint settings moved into the hints section; their old keys keep working on the
    command line, in YAML presets and in configs saved by checkpoints before the move."""
    new = RENAMED[old]
    text, value = RENAMED_VALUES[new]
    assert _get(Config(), new) != value                              # the test can see a change
    cfg, _ = parse_command_line([f"--{old}", text])                  # the command line
    assert _get(cfg, new) == value
    cfg, _ = parse_command_line([f"--{old}={text}"])
    assert _get(cfg, new) == value
    section, name = old.split(".")
    path = tmp_path / "old.yaml"
    path.write_text(f"{section}:\n  {name}: '{text}'\n")
    assert _get(parse_command_line(["--config", str(path)])[0], new) == value   # a preset
    saved = Config().to_dict()                                       # a checkpoint's config
    saved[section][name] = value
    del saved[new.split(".")[0]][new.split(".")[1]]
    assert _get(from_dict(saved), new) == value
    assert upgrade_dict(saved)[new.split(".")[0]][new.split(".")[1]] == value
    assert name not in upgrade_dict(saved)[section] and name in saved[section]  # input kept


def test_config_written_with_the_old_hint_keys_loads_as_it_was_meant():
    """A config dict as checkpoints before the hints section wrote it (the shipped default.pt
    has this layout): hint settings under model, masks and eval, no hints section."""
    old = Config().to_dict()
    del old["hints"]
    old["model"].update(hints=True, hint_fill="residual")
    old["masks"]["hint_p"] = 0.5
    old["eval"].update(hints="0,1,10", baselines="nearest")
    cfg = from_dict(old)
    assert (cfg.hints.enabled, cfg.hints.fill, cfg.hints.train_p, cfg.hints.eval,
            cfg.hints.baselines) == (True, "residual", 0.5, "0,1,10", "nearest")
    assert (cfg.hints.val, cfg.hints.preview) == ("0,10", 5)       # the constants they were
    assert from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="model.hintz"):           # unknown keys still fail
        from_dict({**old, "model": {**old["model"], "hintz": True}})


def test_hints_section_is_checked_by_its_new_names():
    for argv, msg in ((["--model.hint_fill", "input"], r"^hints.fill: 'input' needs hints.enabled"),
                      (["--hints.val", "0,x"], r"^hints.val: "),
                      (["--eval.hints", "-1"], r"^hints.eval: "),
                      (["--masks.hint_p", "0"], r"^hints.train_p: ")):
        with pytest.raises(ConfigError, match=msg):
            load_config(argv)


def test_help_names_the_old_keys():
    from gan_colorize.core.parser import usage
    text = usage()
    assert "--hints.enabled False" in text and "was model.hints" in text
    assert "was eval.hints" in text and "was masks.hint_p" in text


def test_yaml_with_unknown_key_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match="train.stepz"):
        load_config(["--config", str(path)])


def test_save_and_reload_round_trip(tmp_path):
    cfg = load_config(["--config", "quickstart", "--train.seed", "7"])
    save_config(cfg, tmp_path / "config.json")
    again = from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert again == cfg


def test_cli_error_is_one_line_without_traceback():
    proc = subprocess.run([sys.executable, "train.py", "--train.lr_g", "-1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: train.lr_g")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_help_lists_keys():
    proc = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--train.lr_g" in proc.stdout and "quickstart" in proc.stdout


def test_default_config_object_is_valid():
    from gan_colorize.core.checks import check
    check(Config())
