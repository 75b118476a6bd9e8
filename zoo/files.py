"""Folder writes that never leave a half-written result: build a folder in a
staging place beside its target, then swap it in."""

import os
import shutil
import tempfile


def swap_in_folder(staging, out_dir):
    """Moves the complete folder `staging` to `out_dir` (on the same file
    system). A previous `out_dir` is renamed aside first and removed only
    after the swap; if the swap fails it is put back."""
    if not os.path.isdir(out_dir):
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
    shutil.rmtree(aside, ignore_errors=True)
