"""Plumbing that imports nothing else of the package: the config and its one command-line parser,
the spec grammar, colour conversion, image reading, devices, atomic writes, errors, Ctrl-C, DDP."""
