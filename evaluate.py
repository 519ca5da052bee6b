"""Score a checkpoint: `python evaluate.py --checkpoint C [--out DIR] [--section.key VALUE ...]`.
See gan_colorize/eval/evaluation.py and gan_colorize/apps/evaluate_cli.py."""
from gan_colorize.apps.evaluate_cli import main

if __name__ == "__main__":
    main()
