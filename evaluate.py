"""Score a checkpoint: `python evaluate.py --checkpoint C [--out DIR] [--section.key VALUE ...]`.
See gan_colorize/evaluation.py."""
from gan_colorize.eval.evaluation import main

if __name__ == "__main__":
    main()
