"""What several test files share: the tiny training config and hand-made checkpoints.

Tiny means the bundled sample photos at 32 px, width 0.25, batch 2, fp32, no loader workers:
seconds per run on a 2-core CPU. A hand-made checkpoint is laid out like trainer.make_state
(g_ema, config, step) with a generator whose output bias paints strong colour everywhere
(a ~ 50, b ~ -32 in Lab), so leaks and gamut limits are really exercised.
"""
import torch

from gan_colorize.config import load_config
from gan_colorize.networks import build_generator

TINY = ["--config", "quickstart", "--model.width", "0.25", "--data.size", "32",
        "--train.batch_size", "2", "--data.workers", "0", "--train.precision", "fp32",
        "--train.log_every", "1", "--train.sample_every", "1000", "--train.ckpt_every", "1000"]


def tiny_config(*argv, cache_dir):
    """The tiny training Config, its image cache in `cache_dir`, with `argv` overrides on top."""
    return load_config([*TINY, "--train.latest_every", "1000", "--data.cache_dir", str(cache_dir),
                        *map(str, argv)])


def output_layer(g):
    """The generator's last convolution: the one whose bias sets the output colour."""
    return [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]


def hand_made_checkpoint(path, *argv, step=3, ab_bias=(0.5, -0.3), seed=0):
    """Write a checkpoint of a fresh generator (config: defaults + argv) whose output layer's
    bias is `ab_bias` (model units; None keeps the init) -> path."""
    cfg = load_config([*map(str, argv)], check_paths=False)
    torch.manual_seed(seed)
    g = build_generator(cfg.model)
    if ab_bias is not None:
        with torch.no_grad():
            output_layer(g).bias.copy_(torch.tensor(ab_bias))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "gan_colorize/1", "g_ema": g.state_dict(), "config": cfg.to_dict(),
                "step": step}, path)
    return path
