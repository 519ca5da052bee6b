"""Atomic file writes: a crash, a kill or a full disk leaves the old file or the new one, never a
half-written one. The one home for this; checkpoints, configs, logs, metrics and images use it.

The bytes go to a temporary file in the same folder (rename is atomic only within one file
system), are flushed (and with durable=True fsynced), then renamed over the target. On any error
the temporary file is removed and the target is untouched.
"""
import os
import tempfile
from pathlib import Path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, data=None, *, writer=None, durable=False):
    """Write `data` (bytes or str) or call `writer(f)` on a binary file object, then rename over
    `path`. durable=True also fsyncs the file and its folder (checkpoints: survive a power cut).
    Temporary names start with '.' and end with '.tmp'. Raises the OSError of a failed write."""
    if (data is None) == (writer is None):
        raise TypeError("write_atomic needs exactly one of data and writer")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; the result is a normal file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(folder):
    # Makes the rename itself durable; not possible on every platform, and harmless to skip.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
