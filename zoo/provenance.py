"""What a result needs to be reproduced: code version, library versions, device,
time, and content hashes of files and folders."""

import datetime
import functools
import hashlib
import os
import platform
import stat
import subprocess

PACKAGE_VERSION = "0.1.0"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=None)
def code_version():
    """Returns "<package version>+g<git sha>[.dirty]", or the package version
    alone when the code does not run from a git checkout."""
    try:
        sha = subprocess.run(
            ["git", "-C", _ROOT, "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", _ROOT, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return PACKAGE_VERSION
    return f"{PACKAGE_VERSION}+g{sha}" + (".dirty" if dirty else "")


def tf_version():
    """Returns the installed TensorFlow version."""
    import tensorflow as tf

    return tf.__version__


def device_description():
    """Returns the accelerators TensorFlow sees, or the CPU model and core count."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"{len(gpus)}x " + ", ".join(sorted(set(names)))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {cpu} ({os.cpu_count()} cores)"


def environment():
    """Returns the leaderboard's environment fields: code_version, tf_version
    and device."""
    return {
        "code_version": code_version(),
        "tf_version": tf_version(),
        "device": device_description(),
    }


def utc_timestamp():
    """Returns the current UTC time as ISO-8601 with seconds."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def process_alive(pid):
    """Returns whether process `pid` exists (used to tell a live writer's
    temporary files from those of one that was killed)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # It exists, under another user.
        return True
    return True


def sha256_file(path, chunk_size=1 << 20):
    """Returns the hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root):
    """Returns a hex sha256 over every entry below `root`: relative path and
    content, in sorted order, so equal trees hash equal wherever they live.

    Nothing is followed or opened but regular files: a symlink contributes
    its target text, and a FIFO, socket or device raises ValueError naming it
    (opening one could block forever or never end).
    """
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        entries = sorted(filenames + [d for d in dirnames if _is_link(dirpath, d)])
        for name in entries:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                content = "link:" + os.readlink(path)
            elif stat.S_ISREG(mode):
                content = sha256_file(path)
            else:
                raise ValueError(
                    f"{path} is not a regular file (a FIFO, socket or device); "
                    "remove it"
                )
            # fsencode: the name's own bytes, so a valid module whose file
            # names are not UTF-8 hashes too (UTF-8 names hash as before).
            digest.update(os.fsencode(rel) + b"\0")
            digest.update(os.fsencode(content) + b"\0")
    return digest.hexdigest()


def _is_link(dirpath, name):
    return os.path.islink(os.path.join(dirpath, name))
