"""mixture.py: the data.mix grammar, the parts, weighted epochs, and the loaders built on them."""
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import colourful, dcfg
from gan_colorize.core.config import ConfigError
from gan_colorize.core.parser import load_config
from gan_colorize.data.dataset import ResumableSampler, build_loader
from gan_colorize.core.specs import MixSpecError, parse_mix
from gan_colorize.data.mixture import MixedDataset, data_parts, mixture_order
from test_dataset import _collect, full_cfg


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of 12 colour photos (every split: fractions 0)."""
    root = tmp_path_factory.mktemp("mix") / "photos"
    root.mkdir()
    for k in range(12):
        Image.fromarray(colourful(40, 48, 100 + k)).save(root / f"p{k:02d}.png")
    return root


def test_parse_mix():
    assert parse_mix("flowers102=a/b:3, folder=C:/x:1,samples") == [
        ("flowers102", "a/b", 3.0), ("folder", "C:/x", 1.0), ("samples", "", 1.0)]


@pytest.mark.parametrize("spec, part", [
    ("", "empty data mixture"),
    ("flowers102=a:1,,folder=b", "empty entry #2"),
    ("imagenet=a:1", "unknown dataset 'imagenet' in 'imagenet=a:1' (known: samples,"),
    ("folder:2", "dataset 'folder' needs its root in 'folder:2'"),
    ("samples=x", "'samples' takes no root"),
    ("folder=a:x", "bad weight 'x' in 'folder=a:x'"),
    ("folder=a:0,samples:1", "weight > 0"),
    ("folder=:1", "empty argument after '='"),
])
def test_parse_mix_errors_are_one_line(spec, part):
    with pytest.raises(MixSpecError) as err:
        parse_mix(spec)
    assert part in str(err.value) and "\n" not in str(err.value)


def test_config_validates_data_mix(photos, tmp_path):
    cfg = load_config(["--data.mix", f"samples:1,folder={photos}:3"])
    assert cfg.data.mix == f"samples:1,folder={photos}:3"
    # the mixture replaces data.name / data.root: a preset's root need not exist then
    load_config(["--data.name", "flowers17", "--data.root", str(tmp_path / "none"), "--data.mix", "samples"])
    for spec, msg in ((f"folder={tmp_path / 'none'}:1", "does not exist"), ("nope:1", "unknown dataset")):
        with pytest.raises(ConfigError, match=f"^data.mix: .*{msg}") as err:
            load_config(["--data.mix", spec])
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="data.flowers102_split: 'big' is not one of official, train"):
        load_config(["--data.flowers102_split", "big"])


def test_data_parts(photos, tmp_path):
    d = dcfg(photos, tmp_path, mix=f"folder={photos}:2,samples,folder={photos}/:1", flowers102_split="train+test")
    parts = data_parts(d)
    assert [(p.label, p.data.name, p.weight) for p in parts] == [
        ("photos", "folder", 2.0), ("samples", "samples", 1.0), ("photos-2", "folder", 1.0)]
    assert all(p.data.mix == "" and p.data.size == 32 and p.data.flowers102_split == "train+test"
               for p in parts)
    single = data_parts(dcfg(photos, tmp_path))
    assert len(single) == 1 and single[0].data.name == "folder" and single[0].weight == 1.0


def test_mixture_order():
    sizes, weights = [10, 3, 7], [1, 3, 1]
    order = mixture_order(sizes, weights, 20, seed=5, epoch=2)
    assert np.array_equal(order, mixture_order(sizes, weights, 20, seed=5, epoch=2))
    assert not np.array_equal(order, mixture_order(sizes, weights, 20, seed=5, epoch=3))
    part = np.searchsorted([10, 13, 20], order, side="right")
    assert np.bincount(part).tolist() == [4, 12, 4]      # 20 * (1, 3, 1) / 5
    small = order[part == 1]                               # 12 draws of 3 images: each 4 times
    assert sorted(np.bincount(small - 10).tolist()) == [4, 4, 4]
    assert len(set(order[part == 0].tolist())) == 4        # a subset of the big part, no repeats
    # largest remainders: the total is always exact
    assert len(mixture_order([5, 5, 5], [1, 1, 1], 16, 0, 0)) == 16
    s = ResumableSampler(20, shuffle=True, seed=5, groups=list(zip(sizes, weights)))
    s.set_epoch(2)
    assert [int(i) for i in s] == order.tolist()
    with pytest.raises(ValueError, match="do not add up"):
        ResumableSampler(21, shuffle=True, groups=list(zip(sizes, weights)))


@pytest.mark.filterwarnings("ignore:folder/train")
def test_mixed_train_loader(photos, tmp_path):
    """Weighted draws from both parts; batches are a function of the seed and the epoch, not
    of the batch size or the worker count."""
    d = dcfg(photos, tmp_path, mix=f"samples:1,folder={photos}:3")
    seqs = []
    for bs, workers in ((2, 0), (4, 2)):
        d.workers = workers
        loader, sampler = build_loader(full_cfg(d, batch_size=bs), "train", train=True)
        assert isinstance(loader.dataset, MixedDataset) and len(loader.dataset) == 5 + 12
        sampler.set_epoch(1)
        batches = _collect(loader)
        seqs.append({k: torch.cat([b[k] for b in batches]) for k in ("rgb", "mask", "index", "part")})
    assert len(seqs[0]["index"]) == 16 and len(seqs[1]["index"]) == 16   # 17 draws, drop_last
    for k in seqs[0]:
        assert torch.equal(seqs[0][k], seqs[1][k]), k
    part = seqs[0]["part"]
    assert ((seqs[0]["index"] >= 5) == (part == 1)).all()
    full = mixture_order([5, 12], [1, 3], 17, seed=7, epoch=1)
    assert seqs[0]["index"].tolist() == full[:16].tolist()
    assert np.bincount(np.asarray(full) >= 5).tolist() == [4, 13]       # 17 / 4 and 17 * 3 / 4
    # resumed after 3 batches of 2: the rest of the epoch, as the full one had it
    loader, sampler = build_loader(full_cfg(d, batch_size=2), "train", train=True)
    sampler.set_epoch(1)
    sampler.set_start(3 * 2)
    rest = torch.cat([b["index"] for b in _collect(loader)])
    assert torch.equal(rest, seqs[0]["index"][6:])


def test_mixed_eval_loader_is_the_parts_back_to_back(photos, tmp_path):
    d = dcfg(photos, tmp_path, mix=f"samples:1,folder={photos}:3")
    loader, _ = build_loader(full_cfg(d, eval_batch_size=4), "train", train=False)
    batches = _collect(loader)
    index = torch.cat([b["index"] for b in batches]).tolist()
    part = torch.cat([b["part"] for b in batches]).tolist()
    assert index == list(range(17)) and part == [0] * 5 + [1] * 12
    ds = loader.dataset
    assert torch.equal(ds[7]["rgb"], ds.parts[1][2]["rgb"]) and int(ds[7]["index"]) == 7
    with pytest.raises(IndexError):
        ds[17]


@pytest.mark.filterwarnings("ignore:data.root .* has only 6 images")
def test_train_resume_and_evaluate_a_mixture(tmp_path, monkeypatch):
    """train.py trains on a mixture (its preview grid spans the parts' val splits); evaluate.py
    scores each part on its own, or the one dataset named on its command line."""
    import json

    from conftest import tiny_config
    from gan_colorize.apps import evaluate_cli
    from gan_colorize.train import loop as train_loop
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))   # no FID/LPIPS weights
    few = tmp_path / "few"                  # under 10 images: every split holds all of them
    few.mkdir()
    for k in range(6):
        Image.fromarray(colourful(40, 48, 200 + k)).save(few / f"f{k}.png")

    def cfg(*argv):
        return tiny_config("--data.mix", f"samples:1,folder={few}:2", "--train.out_dir", tmp_path,
                           *argv, cache_dir=tmp_path / "cache")
    assert train_loop.train(cfg("--train.steps", "2", "--train.name", "a")).step == 2

    ckpt = tmp_path / "a" / "checkpoints" / "latest.pt"
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(ckpt), "--device", "cpu", "--eval.max_samples", "4"]
    assert evaluate_cli.main([*argv, "--out", str(out)]) == 0
    reps = {p: json.loads((out / p / "metrics.json").read_text()) for p in ("samples", "few")}
    assert {p: r["config"]["data"]["name"] for p, r in reps.items()} == {"samples": "samples", "few": "folder"}
    assert all(r["n_samples"] == 4 and r["config"]["data"]["mix"] == "" for r in reps.values())
    assert evaluate_cli.main([*argv, "--out", str(tmp_path / "one"), "--data.name", "samples"]) == 0
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["config"]["data"]["mix"] == ""
