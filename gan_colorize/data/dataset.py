"""The masked-image Dataset, its resumable sampler, and the DataLoader that combines them.

An item is a crop of an ImageCache image (uint8) with a mask drawn from a masks.MaskSampler.
Randomness is keyed, never drawn from worker state: a training item is a pure function of
(train seed, epoch, position in the epoch's order, image index), an eval item of (eval seed,
index), so batches do not depend on batch size, worker count or resumption.

Which images make up a split is splits.py; decoding and caching them is cache.py; a weighted
mixture of datasets (data.mix) is mixture.py.
"""
import inspect
import math
import os
import random

import albumentations as A
import cv2
import numpy as np
import torch

from ..core.errors import UserError
from ..core.imageio import resize_short
from ..core.specs import resolve_spec
from .cache import ImageCache
from .hints import HINT_STREAM, rgb_ab, sample_hints
from .masks import MaskSampler, mask_rng
from .mixture import MixedDataset, data_parts, mixture_order


def centre_crop(img, size):
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y:y + size, x:x + size]


class MaskedImageDataset(torch.utils.data.Dataset):
    """Crops of ImageCache images, each with a mask: the items of training and of evaluation.

    MaskedImageDataset(cache, mask_sampler, size, train, pairing="random", seed=0, hint_p=None)
    Item: dict(rgb uint8 (3,size,size), mask float32 (1,size,size) {0,1}, family int64 (index
    into mask_sampler.families), index int64 (the item index)); with hint_p (training with colour
    hints, hints.enabled) also hints, a hints.Hints(ab float32 (2,size,size), mask float32
    (1,size,size)) from hints.sample_hints(p=hint_p), drawn from the item's own seed like its
    mask (batches collate it into one Hints of (N,2,...) and (N,1,...)).
    - train=True: albumentations RandomResizedCrop(scale 0.5..1, ratio 3/4..4/3) + a horizontal
      flip (p=0.5) on the uint8 image (and segmentation), then a mask from the sampler. The key
      may be an int or the (epoch, position, index) tuple that ResumableSampler(tag_epoch=True)
      yields; all randomness comes from default_rng([seed, epoch, position, index]).
    - train=False: shorter side resized to size, centre crop; mask from mask_rng(seed, index).
    - pairing="all" (fixed mask families only): len = n_images * n_masks, item i is image
      i // n_masks with mask i % n_masks of mask_sampler.fixed_masks(size, size).
    - train=False with a spec of one `file` entry (a mask file or folder): item i gets file
      i % n_files (sorted) instead of a draw, so every file is used equally often.
    When the sampler needs segmentations, images without one are left out. pairing is trusted
    to be valid (checks.check checks it).
    """

    def __init__(self, cache, mask_sampler, size, train, pairing="random", seed=0, hint_p=None):
        self.cache, self.sampler, self.size, self.train = cache, mask_sampler, int(size), bool(train)
        self.pairing, self.seed, self.hint_p = pairing, int(seed), hint_p
        self.ids = np.arange(len(cache))
        if mask_sampler.needs_segmentation:
            self.ids = self.ids[cache.has_seg]
            if len(self.ids) == 0:
                raise UserError(f"mask family 'segmentation' needs segmentations, and "
                                f"{cache.name}/{cache.split} has none")
        # the masks held here, not drawn: pairing=all gives every image each of them; at
        # evaluation a lone mask file or folder (the user's own masks) is dealt out in order
        dealt = not train and [e.family for e in mask_sampler.entries] == ["file"]
        self.fixed = mask_sampler.fixed_masks(self.size, self.size) if pairing == "all" or dealt else None
        self.n_masks = len(self.fixed) if pairing == "all" else 1  # masks per image
        if self.n_masks == 0:
            raise UserError(f"mask spec {mask_sampler.spec!r} gives no mask for pairing=all")
        self.family_index = {f: i for i, f in enumerate(mask_sampler.families)}
        self._crop = None

    def __len__(self):
        return len(self.ids) * self.n_masks

    def _crop_transform(self):
        if self._crop is None:
            kw = dict(size=(self.size, self.size), scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3), p=1.0)
            params = inspect.signature(A.RandomResizedCrop.__init__).parameters
            if "mask_interpolation" in params:  # plain INTER_NEAREST is off by up to half a pixel
                kw["mask_interpolation"] = cv2.INTER_NEAREST_EXACT
            if "area_for_downscale" in params:
                kw["area_for_downscale"] = "image"  # INTER_AREA when the crop shrinks
            self._crop = A.Compose([A.RandomResizedCrop(**kw)])
        return self._crop

    def _train_view(self, img, seg, rng):
        crop = self._crop_transform()
        seed = int(rng.integers(2 ** 31))
        if hasattr(crop, "set_random_seed"):
            crop.set_random_seed(seed)
        else:  # albumentations < 2 draws from the global generators
            random.seed(seed)
            np.random.seed(seed)
        out = crop(image=img, mask=seg) if seg is not None else crop(image=img)
        img, seg = out["image"], out.get("mask") if seg is not None else None
        if rng.random() < 0.5:
            img = img[:, ::-1]
            seg = seg[:, ::-1] if seg is not None else None
        return img, seg

    def _eval_view(self, img, seg):
        img = centre_crop(resize_short(img, self.size), self.size)
        if seg is not None:
            seg = centre_crop(resize_short(seg, self.size, interp=cv2.INTER_NEAREST_EXACT), self.size)
        return img, seg

    def _mask(self, i, img, seg, rng):
        """The mask of item i on its view img (size x size) -> (mask float32 (h,w), family)."""
        if self.fixed is not None:
            return self.fixed[i % len(self.fixed)]
        return self.sampler.sample(self.size, self.size, rng, image=img, segmentation=seg)

    def __getitem__(self, key):
        if isinstance(key, (tuple, list)):
            epoch, pos, i = (int(k) for k in key)
        else:
            epoch, pos, i = 0, int(key), int(key)
        if not 0 <= i < len(self):
            raise IndexError(i)
        img_id = int(self.ids[i // self.n_masks])
        img = self.cache.image(img_id)
        seg = self.cache.segmentation(img_id)
        if self.train:
            rng = np.random.default_rng([self.seed, epoch, pos, i])
            img, seg = self._train_view(img, seg, rng)
        else:
            rng = mask_rng(self.seed, i)
            img, seg = self._eval_view(img, seg)
        img = np.ascontiguousarray(img)
        seg = np.ascontiguousarray(seg) if seg is not None else None
        mask, family = self._mask(i, img, seg, rng)
        item = {
            "rgb": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None]),
            "family": torch.tensor(self.family_index[family], dtype=torch.int64),
            "index": torch.tensor(i, dtype=torch.int64),
        }
        if self.hint_p is not None:
            # its own stream: the same hints whatever the mask family consumed from rng
            hint_rng = np.random.default_rng([self.seed, epoch, pos, i, HINT_STREAM])
            item["hints"] = sample_hints(rgb_ab(img), item["mask"], hint_rng, p=self.hint_p)
        return item


# ---------------------------------------------------------------------------------------------
# sampling order and loaders

class ResumableSampler(torch.utils.data.Sampler):
    """Epoch order as a pure function of (seed, epoch), sharded over ranks, resumable mid-epoch.

    ResumableSampler(n, shuffle, seed=0, rank=0, world_size=1, even=True, min_len=0, tag_epoch=False,
                     groups=None)
    - The epoch's global order: shuffle -> concatenated permutations from
      default_rng([seed, epoch, r]), r = 0, 1, ...; else 0..n-1; repeated until it holds at least
      max(n, min_len) items (so a tiny dataset still fills a batch).
    - groups (shuffled only): [(size, weight)] of the consecutive index ranges of a mixture's
      parts (sizes summing to n); the epoch's order is then mixture.mixture_order, as many
      items as above, each part's share by its weight.
    - Rank r takes positions r, r + world_size, ... of it. even=True pads the order by wrapping
      around so every rank gets the same count (training); even=False does not (evaluation:
      no sample twice, shards may differ by one).
    - set_epoch(e) picks the order; set_start(k) makes the NEXT iteration skip this rank's first
      k samples (k = batches already done in this epoch * per-rank batch size); it applies once.
    - tag_epoch=True yields (epoch, position, index) tuples that MaskedImageDataset turns into
      its random keys; otherwise plain indices.
    len() is the number of samples the next iteration yields.
    """

    def __init__(self, n, shuffle, seed=0, rank=0, world_size=1, even=True, min_len=0, tag_epoch=False,
                 groups=None):
        if n <= 0:
            raise ValueError("ResumableSampler needs n >= 1")
        if groups is not None and sum(g[0] for g in groups) != n:
            raise ValueError(f"group sizes {[g[0] for g in groups]} do not add up to n = {n}")
        self.groups = [(int(g), float(w)) for g, w in groups] if groups is not None else None
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} not in [0, {world_size})")
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.rank, self.world_size, self.even = int(rank), int(world_size), bool(even)
        self.min_len, self.tag_epoch = int(min_len), bool(tag_epoch)
        self.epoch, self._start = 0, 0

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def set_start(self, k):
        k = int(k)
        if not 0 <= k <= self._full_len():
            raise ValueError(f"start {k} is outside this rank's epoch of {self._full_len()} samples")
        self._start = k

    def _order(self):
        """(positions, indices) of this rank for the current epoch."""
        reps = max(1, math.ceil(self.min_len / self.n))
        if self.shuffle and self.groups is not None:
            order = mixture_order([g[0] for g in self.groups], [g[1] for g in self.groups],
                                  self.n * reps, self.seed, self.epoch)
        elif self.shuffle:
            order = np.concatenate([np.random.default_rng([self.seed, self.epoch, r]).permutation(self.n)
                                    for r in range(reps)])
        else:
            order = np.tile(np.arange(self.n), reps)
        pos = np.arange(len(order))
        if self.even and len(order) % self.world_size:  # wrap around to equal shares
            order = np.resize(order, math.ceil(len(order) / self.world_size) * self.world_size)
            pos = np.arange(len(order))
        return pos[self.rank::self.world_size], order[self.rank::self.world_size]

    def _full_len(self):
        reps = max(1, math.ceil(self.min_len / self.n))
        total = self.n * reps
        if self.even:
            return math.ceil(total / self.world_size)
        return len(range(self.rank, total, self.world_size))

    def __len__(self):
        return self._full_len() - self._start

    def __iter__(self):
        start, self._start = self._start, 0
        pos, idx = self._order()
        if self.tag_epoch:
            return iter([(self.epoch, int(p), int(i)) for p, i in zip(pos[start:], idx[start:])])
        return iter(int(i) for i in idx[start:])


def _worker_init(_):
    # Ctrl-C in a terminal (or `kill -TERM -- -PGID`) signals the whole process group. The main
    # process then finishes its step, saves and shuts the workers down itself; a worker killed
    # first would crash it mid-step instead. So workers leave the group. They still stop when the
    # main process asks (SIGTERM from the parent) or dies (DataLoader's watchdog).
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:
            pass


def _single_threaded_opencv():
    # OpenCV's own thread pool in every worker process only oversubscribes the cores. It must be
    # turned off here, in the parent, before the fork: a forked child that calls setNumThreads
    # while the parent's pool has run (e.g. an earlier loader with workers=0) waits forever on
    # pool threads that were not copied into it.
    try:
        cv2.setNumThreads(1)
    except Exception:
        pass


def build_loader(cfg, split, train, rank=0, world_size=1, *, size=None, mask_spec=None,
                 batch_size=None, max_samples=0, progress=None):
    """-> (DataLoader, ResumableSampler) for one split.

    train=True: masks.train, train.seed, train.batch_size, shuffled, drop_last, an epoch of at
    least one full batch per rank, items keyed by (epoch, position, index); with hints.enabled,
    training hints (hints.train_p). Evaluation draws its hints itself (evaluation.py).
    train=False: mask_spec or masks.preview, eval.seed for the masks, eval.batch_size, fixed
    order, every item once (shards may be uneven across ranks), the first max_samples items
    when max_samples > 0.
    A mask spec may also be a bare mask file or folder (masks.resolve_spec). cfg is trusted to
    be validated (checks.check). masks.pairing=all pairs every image with every fixed mask;
    an eval spec that is not fixed is drawn per item instead.
    size defaults to data.size. With torch.distributed initialised, rank 0 builds the cache while
    the other ranks wait at a barrier. Workers: data.workers (persistent when > 0).
    With data.mix, the dataset is a mixture.MixedDataset of the parts' splits, drawn by weight in
    training and back to back otherwise (items also carry `part`).
    """
    size = int(size or cfg.data.size)
    sampler_m = MaskSampler(resolve_spec(cfg.masks.train if train else mask_spec or cfg.masks.preview))
    # pairing=all is validated against masks.train only: e.g. the trainer's preview grid under a
    # random masks.preview, or evaluate.py --eval.masks brush:1, draws one mask per image instead
    pairing = cfg.masks.pairing if train or sampler_m.is_fixed else "random"
    dist_on = (world_size > 1 and torch.distributed.is_available()
               and torch.distributed.is_initialized())
    if dist_on and rank != 0:
        torch.distributed.barrier()
    parts = data_parts(cfg.data)
    caches = [ImageCache(p.data, split, size=size, progress=(rank == 0) if progress is None else progress)
              for p in parts]
    if dist_on and rank == 0:
        torch.distributed.barrier()
    seed = cfg.train.seed if train else cfg.eval.seed
    hint_p = cfg.hints.train_p if train and cfg.hints.enabled else None
    sets = [MaskedImageDataset(c, sampler_m, size, train=train, pairing=pairing, seed=seed,
                               hint_p=hint_p) for c in caches]
    ds = sets[0] if len(sets) == 1 else MixedDataset(sets, [p.label for p in parts])
    groups = [(len(d), p.weight) for d, p in zip(sets, parts)] if train and len(sets) > 1 else None
    bs = int(batch_size or (cfg.train.batch_size if train else cfg.eval.batch_size))
    n = len(ds) if train or not max_samples else min(len(ds), int(max_samples))
    order = ResumableSampler(n, shuffle=train, seed=cfg.train.seed, rank=rank, world_size=world_size,
                             even=train, min_len=bs * world_size if train else 0, tag_epoch=train,
                             groups=groups)
    workers = int(cfg.data.workers)
    if workers > 0:
        _single_threaded_opencv()
    loader = torch.utils.data.DataLoader(
        ds, batch_size=bs, sampler=order, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(), drop_last=train, worker_init_fn=_worker_init)
    return loader, order