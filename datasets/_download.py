"""Shared helper of the dataset download scripts: fetch, verify, unpack, move into place.

Every step works in a temporary folder inside the destination root, and only a fully downloaded,
verified and unpacked result is moved into place (os.replace, atomic on one file system). On any
failure (network, md5 mismatch, bad archive, content check, Ctrl-C) the temporary folder is
removed, so nothing half-written is ever left behind, and a re-run starts clean.

Standard library only (+ tqdm for the progress bar when it is installed).
"""
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request

CHUNK = 1 << 20


class DownloadError(Exception):
    """A one-line, user-facing reason why a download could not be completed."""


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _progress(total, desc):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety, not a requirement
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                disable=not sys.stderr.isatty() and os.environ.get("TQDM_FORCE") is None)


def download(url, dest, md5=None, timeout=60):
    """Download `url` to the file `dest`, verifying `md5` (hex) when given.

    Streams into a temporary file next to `dest` and renames it into place only when complete
    and verified. Returns the md5 of the file. Raises DownloadError.
    """
    dest = os.path.abspath(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".part",
                               dir=os.path.dirname(dest))
    h = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                reason = getattr(e, "reason", e)
                raise DownloadError(f"cannot download {url}: {reason}") from None
            with resp:
                total = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
                bar = _progress(int(total) if total and total.isdigit() else None,
                                os.path.basename(dest))
                try:
                    while True:
                        try:
                            block = resp.read(CHUNK)
                        except (OSError, urllib.error.URLError) as e:
                            raise DownloadError(f"download of {url} failed: {e}") from None
                        if not block:
                            break
                        out.write(block)
                        h.update(block)
                        if bar is not None:
                            bar.update(len(block))
                finally:
                    if bar is not None:
                        bar.close()
        got = h.hexdigest()
        if md5 is not None and got != md5.lower():
            raise DownloadError(f"md5 mismatch for {url}: expected {md5}, got {got} "
                                "(corrupt or changed download; nothing was kept)")
        os.replace(tmp, dest)
        return got
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _safe_members(tar, into):
    """Refuse archives that would write outside `into` (absolute paths, '..', links out)."""
    into = os.path.realpath(into)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(into, m.name))
        if target != into and not target.startswith(into + os.sep):
            raise DownloadError(f"archive member {m.name!r} would unpack outside the target folder")
        if m.issym() or m.islnk():
            base = os.path.dirname(target) if m.issym() else into  # hard links name archive paths
            link = os.path.realpath(os.path.join(base, m.linkname))
            if not link.startswith(into + os.sep):
                raise DownloadError(f"archive member {m.name!r} links outside the target folder")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise DownloadError(f"archive member {m.name!r} is not a file or folder")
    return tar.getmembers()


def unpack(archive, into):
    """Unpack a .tar/.tgz/.tar.gz into the folder `into`. Raises DownloadError."""
    try:
        with tarfile.open(archive) as tar:
            members = _safe_members(tar, into)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(into, members=members, **kwargs)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DownloadError(f"cannot unpack {os.path.basename(archive)}: {e}") from None


def fetch(root, url, md5=None, unpack_dirs=None, verify=None, keep_archive=False,
          md5_strict=True):
    """Download `url` into `root` (and unpack it when `unpack_dirs` is given).

    - plain file (unpack_dirs None): ends up as root/<basename of url>.
    - archive: unpacked in a temporary folder; each name in `unpack_dirs` (top-level entries of
      the archive, e.g. ["jpg"]) is moved to root/<name>. `verify(tmp_root)` may inspect the
      unpacked tree first and raise DownloadError (used where no archive md5 is known).
    - md5_strict=False (archives with a `verify`): an archive md5 mismatch is only reported, and
      the content check decides - for archives whose published md5 we could not confirm.
    Entries that already exist in root are left alone (run again after deleting them to
    re-download). Returns the list of paths now in place. Raises DownloadError.
    """
    root = os.path.abspath(os.path.expanduser(root))
    os.makedirs(root, exist_ok=True)
    name = os.path.basename(url.rstrip("/"))
    targets = [os.path.join(root, d) for d in (unpack_dirs or [name])]
    if all(os.path.exists(t) for t in targets):
        print(f"{', '.join(os.path.relpath(t, root) for t in targets)}: already present in {root}, skipped")
        return targets
    work = tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root)
    try:
        archive = os.path.join(work, name)
        strict = md5_strict or verify is None or unpack_dirs is None
        got = download(url, archive, md5=md5 if strict else None)
        if md5 is not None and got != md5.lower():
            print(f"note: {name} md5 is {got}, not the expected {md5}; checking its content instead")
        if unpack_dirs is None:
            os.replace(archive, targets[0])
            return targets
        tree = os.path.join(work, "unpacked")
        os.makedirs(tree)
        unpack(archive, tree)
        for d in unpack_dirs:
            if not os.path.exists(os.path.join(tree, d)):
                raise DownloadError(f"{name} does not contain {d}/ (unexpected archive layout)")
        if verify is not None:
            verify(tree)
        for d, t in zip(unpack_dirs, targets):
            if not os.path.exists(t):
                os.replace(os.path.join(tree, d), t)
        if keep_archive:
            os.replace(archive, os.path.join(root, name))
        return targets
    finally:
        shutil.rmtree(work, ignore_errors=True)


def count_files(folder, suffix):
    return sum(1 for f in os.listdir(folder) if f.lower().endswith(suffix))


def expect_count(sub, suffix, n):
    """A verify() callback: the unpacked tree must hold exactly n `suffix` files in `sub`."""
    def check(tree):
        folder = os.path.join(tree, sub)
        got = count_files(folder, suffix) if os.path.isdir(folder) else 0
        if got != n:
            raise DownloadError(f"{sub}/ holds {got} {suffix} files, expected {n} "
                                "(incomplete or changed archive; nothing was kept)")
    return check


def run(main):
    """Run a script's main(); a DownloadError or KeyboardInterrupt ends it with one line."""
    try:
        main()
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("error: interrupted; partial files were removed", file=sys.stderr)
        raise SystemExit(130) from None
