"""The networks (generators, discriminators, the hint fills), the losses, and checkpoints."""
