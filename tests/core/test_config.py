import json
import subprocess
import sys
from pathlib import Path

import pytest

from gan_colorize.core.config import CONFIG_DIR, Config, ConfigError, from_dict, save_config
from gan_colorize.core.parser import load_config

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
    from gan_colorize.core.config import check
    check(Config())
