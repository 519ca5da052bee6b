"""Errors that are the user's to fix: the CLIs print them as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user (a config value, a file, a mask spec). The message is one line."""
