"""Light entry points: the config is parsed and validated before torch is imported, so a typo
costs a fraction of a second, not the seconds that importing torch and the models takes."""
import os
import sys

from .config import cli_main, load_config


@cli_main
def train_main(argv=None):
    """`python train.py [--config PRESET] [--section.key value ...]`; prints `run_dir: PATH` last."""
    cfg = load_config(sys.argv[1:] if argv is None else argv, default_preset="quickstart")
    from .trainer import run
    run_dir = run(cfg)
    if run_dir is not None and int(os.environ.get("RANK", "0")) == 0:
        print(f"run_dir: {run_dir}")
