"""Train a mask-conditioned colorization GAN. `python train.py --help` lists the options."""
from gan_colorize.cli import train_main

if __name__ == "__main__":
    train_main()
