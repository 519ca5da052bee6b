"""The straightforward input pipeline that gan_colorize's is compared with.

What a first version would do: a torch Dataset that, for every item, PIL-decodes the original
JPEG at full resolution, applies torchvision's RandomResizedCrop (same scale/ratio as
MaskedImageDataset) and a horizontal flip on the PIL image, converts to Lab with
skimage.color.rgb2lab in float32 in the worker, and returns float tensors. Masks come from the
same MaskSampler as the real pipeline, so the comparison isolates decoding and colour conversion.

Item: gray float32 (1,S,S) in [-1,1], ab float32 (2,S,S) in about [-1,1], mask float32 (1,S,S).
"""
import numpy as np
import torch


class StraightforwardDataset(torch.utils.data.Dataset):
    def __init__(self, paths, size, mask_spec, seed=0):
        from gan_colorize.data.masks import MaskSampler
        from gan_colorize.core.specs import resolve_spec
        self.paths, self.size, self.seed = list(paths), int(size), int(seed)
        self.sampler = MaskSampler(resolve_spec(mask_spec))
        self._tf = None

    def __len__(self):
        return len(self.paths)

    def _transform(self):
        if self._tf is None:
            from torchvision import transforms as T
            self._tf = T.Compose([T.RandomResizedCrop(self.size, scale=(0.5, 1.0), ratio=(3 / 4, 4 / 3)),
                                  T.RandomHorizontalFlip()])
        return self._tf

    def __getitem__(self, i):
        from PIL import Image
        from skimage.color import rgb2lab
        with Image.open(self.paths[i]) as im:
            img = self._transform()(im.convert("RGB"))     # torch's RNG, seeded per worker
        rgb = np.asarray(img, dtype=np.uint8)
        lab = rgb2lab(rgb.astype(np.float32) / 255).astype(np.float32, copy=False)
        rng = np.random.default_rng([self.seed, i, int(torch.randint(2 ** 31, ()).item())])
        mask, _ = self.sampler.sample(self.size, self.size, rng, image=rgb)
        return {"gray": torch.from_numpy(np.ascontiguousarray(lab[..., 0][None] / 50 - 1)),
                "ab": torch.from_numpy(np.ascontiguousarray(lab[..., 1:].transpose(2, 0, 1) / 110)),
                "mask": torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None])}


def build_loader(cfg, split="train", batch_size=None, workers=None):
    """The straightforward DataLoader over the same split and masks as data.build_loader(cfg)."""
    from gan_colorize.data.splits import list_split
    records = list_split(cfg.data, split)
    ds = StraightforwardDataset([r.path for r in records], cfg.data.size, cfg.masks.train, cfg.train.seed)
    workers = int(cfg.data.workers if workers is None else workers)
    bs = int(batch_size or cfg.train.batch_size)
    return torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, drop_last=len(ds) >= bs,
                                       num_workers=workers, persistent_workers=workers > 0,
                                       pin_memory=torch.cuda.is_available())


def to_device(batch, env):
    """Float batch -> (gray, ab_real, mask) on env.device, channels_last like trainer.to_device."""
    out = []
    for k in ("gray", "ab", "mask"):
        t = batch[k].to(env.device, non_blocking=True)
        if env.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        out.append(t)
    return tuple(out)
