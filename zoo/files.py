"""Writes that never leave a half-written result, one helper per mechanism:
`atomic_path` / `write_atomic` for a file (a temporary file in the same
folder, fsync of the file and the folder, then one rename), and
`swap_in_folder` for a folder built in a staging place beside its target."""

import contextlib
import os
import shutil
import tempfile

TMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path` to write the new file to; on a
    clean exit the file is fsynced, renamed onto `path` and the folder
    fsynced, so readers see the old file or the whole new one. On error the
    temporary file is removed and `path` is untouched. `suffix` keeps a
    writer that appends its own extension (numpy's .npz) on the same name.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}{TMP_MARK}{os.getpid()}{suffix}"
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_folder(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_atomic(path, data, mode=0o644):
    """Writes `data` (str: UTF-8, or bytes) to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, mode)


def fsync_folder(folder):
    """Flushes a folder's entries (a rename inside it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def swap_in_folder(staging, out_dir):
    """Moves the complete folder `staging` to `out_dir` (on the same file
    system). A previous `out_dir` is renamed aside first and removed only
    after the swap; if the swap fails it is put back."""
    if not os.path.lexists(out_dir):
        os.replace(staging, out_dir)
        return
    aside = tempfile.mkdtemp(prefix=".replaced-", dir=os.path.dirname(out_dir) or ".")
    os.rmdir(aside)
    os.replace(out_dir, aside)
    try:
        os.replace(staging, out_dir)
    except BaseException:
        os.replace(aside, out_dir)
        raise
    if os.path.isdir(aside) and not os.path.islink(aside):
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.remove(aside)


def publish_folder(staging, out_dir):
    """Moves the complete folder `staging` to `out_dir` unless another writer
    published it first; returns whether this one did (then `staging` is
    removed, and the other's folder stands)."""
    try:
        os.rename(staging, out_dir)
        return True
    except OSError:
        if not os.path.isdir(out_dir):
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return False
