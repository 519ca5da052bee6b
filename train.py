"""Train a mask-conditioned colorization GAN. `python train.py --help` lists the options."""
from gan_colorize.trainer import main

if __name__ == "__main__":
    main()
