"""Light entry points: the config is parsed and validated before torch is imported, so a typo
costs a fraction of a second, not the seconds that importing torch and the models takes."""
import os
import sys
import warnings

from ..core.parser import cli_main, load_config


def _warning_line(message, category, filename, lineno, line=None):
    # The default format adds the source line that raised the warning: noise for a CLI user.
    return f"warning: {' '.join(str(message).split())}\n"


@cli_main
def train_main(argv=None):
    """`python train.py [--config PRESET] [--section.key value ...]`; prints `run_dir: PATH` last."""
    cfg = load_config(sys.argv[1:] if argv is None else argv, default_preset="quickstart")
    old_format, warnings.formatwarning = warnings.formatwarning, _warning_line
    try:
        # a Ctrl-C before the training loop installs its handler (imports, the data cache), or a
        # second one, ends in cli_main: `interrupted`, exit status 130
        from ..train.loop import run   # deferred: torch loads after the config was checked
        run_dir = run(cfg)
    finally:
        warnings.formatwarning = old_format
    if run_dir is not None and int(os.environ.get("RANK", "0")) == 0:
        print(f"run_dir: {run_dir}")
