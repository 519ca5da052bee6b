"""Training on a weighted mixture of datasets (data.mix), each part with its own splits.

    data.mix = "flowers102=../shared/datasets/flowers102:3,folder=../shared/datasets/imagenet_samples:1"

Grammar (core/specs.py: parse_mix, the mask specs' own split_spec): `entry ("," entry)*`, entry := `NAME[=ROOT][:WEIGHT]`,
NAME one of data.name's datasets, ROOT its folder (every dataset but `samples` needs one),
WEIGHT a finite number > 0 (default 1). The weight is whatever follows the LAST ':', so a root
containing ':' needs an explicit weight; a root cannot contain ','. Every other data.* key
(size, cache_dir, min_ab_range, the folder fractions, flowers102_split) applies to each part.
An empty data.mix (the default) means the one dataset of data.name / data.root.

Each part is its own dataset with its own train / val / test split and cache (data_parts gives
its DataConfig). Training draws from the parts by weight: an epoch holds as many samples as
the parts have training images together, and part k gets the share weight_k / sum(weights) of
them (largest remainders), its images drawn as concatenated permutations from
default_rng([seed, epoch, MIX_STREAM, k, r]) and the epoch's samples shuffled together by
default_rng([seed, epoch, MIX_STREAM]) (mixture_order, called by data.ResumableSampler). So a
part with a large weight repeats its images within an epoch and one with a small weight sees a
different subset each epoch; the order, like every sample's crop and mask, is a function of
(seed, epoch, position), not of batch size or worker count. Evaluation keeps the parts apart:
evaluate.py scores each part on its own (see evaluation.py); the trainer's preview grid spans
the parts' val splits in turn.

Part labels (evaluation folders, the `part` of a batch): the dataset name, or for `folder` the
root's folder name; a repeated label gets -2, -3, ...
"""
import dataclasses
import math
import os
import warnings
from typing import NamedTuple

import numpy as np
import torch

from ..core.errors import UserError
from ..core.specs import parse_mix
from .splits import list_split

MIX_STREAM = 0x6D6978   # "mix": keeps the mixture's draws apart from the sampler's own


class Part(NamedTuple):
    label: str
    data: object        # a config.DataConfig with this part's name and root, and no mix
    weight: float


def data_parts(cfg_data):
    """The datasets that cfg_data trains on -> [Part]; one Part(data.name, cfg_data, 1.0)
    without data.mix. cfg_data is trusted to be validated."""
    if not cfg_data.mix:
        return [Part(cfg_data.name, cfg_data, 1.0)]
    parts, seen = [], {}
    for name, root, weight in parse_mix(cfg_data.mix):
        label = os.path.basename(os.path.normpath(os.path.expanduser(root))) if name == "folder" else name
        seen[label] = seen.get(label, 0) + 1
        label = label if seen[label] == 1 else f"{label}-{seen[label]}"
        parts.append(Part(label, dataclasses.replace(cfg_data, name=name, root=root, mix=""), weight))
    return parts


def not_held_out(cfg_data):
    """Labels of the parts whose every val image is also one of their train images, so that
    validating on them scores photos the model trains on: `samples` (all five photos are every
    split; see splits.py) and a `folder` of fewer than splits.SMALL_FOLDER images. A part whose
    splits cannot be listed is left out (training has already said why)."""
    out = []
    for part in data_parts(cfg_data):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # a small folder: said when training listed it
                val = {r.path for r in list_split(part.data, "val")}
                train = {r.path for r in list_split(part.data, "train")}
        except (UserError, OSError, ValueError):
            continue
        if val <= train:
            out.append(part.label)
    return out


def mixture_order(sizes, weights, total, seed, epoch):
    """The shuffled global indices of one epoch of `total` samples drawn from parts of `sizes`
    images (part k holds global indices offset_k .. offset_k + sizes[k] - 1) by `weights`
    (see the module docstring) -> int64 array (total,)."""
    sizes = [int(n) for n in sizes]
    w = np.asarray(weights, np.float64)
    exact = total * w / w.sum()
    quota = np.floor(exact).astype(np.int64)
    short = total - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1   # largest remainders
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    draws = []
    for k, (n, q) in enumerate(zip(sizes, quota)):
        reps = math.ceil(q / n) if n else 0
        perms = [np.random.default_rng([seed, epoch, MIX_STREAM, k, r]).permutation(n) for r in range(reps)]
        draws.append(offsets[k] + np.concatenate(perms or [np.zeros(0, np.int64)])[:q])
    order = np.concatenate(draws)
    return order[np.random.default_rng([seed, epoch, MIX_STREAM]).permutation(len(order))]


class MixedDataset(torch.utils.data.Dataset):
    """The parts' MaskedImageDatasets back to back: global index i is item i - offset_k of part
    k. Keys are those of MaskedImageDataset (an int, or (epoch, position, index) in training);
    each item gets `index` = the global index and `part` = k (int64)."""

    def __init__(self, datasets, labels):
        self.parts, self.labels = list(datasets), list(labels)
        self.sizes = [len(d) for d in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)

    def __len__(self):
        return int(self.offsets[-1])

    def __getitem__(self, key):
        tagged = isinstance(key, (tuple, list))
        i = int(key[2]) if tagged else int(key)
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.offsets, i, side="right") - 1)
        local = i - int(self.offsets[k])
        item = self.parts[k][(int(key[0]), int(key[1]), local) if tagged else local]
        item["index"] = torch.tensor(i, dtype=torch.int64)
        item["part"] = torch.tensor(k, dtype=torch.int64)
        return item
