"""Train a mask-conditioned colorization GAN. `python train.py --help` lists the options."""
from gan_colorize.apps.train_cli import train_main

if __name__ == "__main__":
    train_main()
