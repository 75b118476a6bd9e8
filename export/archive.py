"""Module archives: a deterministic .tar.gz of a module directory, and an
extractor that refuses archives that could write outside their destination.

Layout (what tensorflow_hub's compressed-module resolver extracts): the files of
the module directory at the archive root, with no leading folder, e.g.
`saved_model.pb`, `variables/variables.index`, `metadata.json`, `README.md`.
Each folder has its own entry before its files, because tensorflow_hub writes
each file with tf.io.gfile and creates folders only from folder entries.
"""

import gzip
import os
import pathlib
import shutil
import tarfile
import tempfile
import zlib

from zoo.files import atomic_path, swap_in_folder
from zoo.provenance import sha256_file

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# Extraction limits: what a module archive may expand to. The byte limit is a
# default of the callers (export.fetch.FetchLimits); these two are fixed.
MAX_MEMBERS = 100_000
MAX_DEPTH = 32
# A module's weights barely compress (float32 noise: about 1.1x), so an
# archive that expands to many times its own size is a decompression bomb.
# Below EXPANSION_FLOOR the ratio is not applied (small modules of zeros).
MAX_EXPANSION = 16
EXPANSION_FLOOR = 64 << 20
_FILE_MODE = 0o644
_DIR_MODE = 0o755
_COPY_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive that cannot be written or is unsafe to extract."""


def _members(module_dir):
    """Yields (relative posix path, absolute path) of every folder and file
    below `module_dir`, sorted, each folder before its contents."""
    for dirpath, dirnames, filenames in os.walk(module_dir):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, module_dir)
        if rel_dir != ".":
            yield pathlib.PurePath(rel_dir).as_posix(), dirpath
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            yield pathlib.PurePath(os.path.relpath(path, module_dir)).as_posix(), path


def _tarinfo(name, path):
    """Returns a TarInfo for `path` with every varying field fixed: mtime 0,
    owner root, permissions 644 (files) or 755 (folders)."""
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if os.path.isdir(path):
        info.type = tarfile.DIRTYPE
        info.mode = _DIR_MODE
    else:
        info.type = tarfile.REGTYPE
        info.mode = _FILE_MODE
        info.size = os.path.getsize(path)
    return info


def _write_tar_gz(module_dir, raw):
    """Writes the gzipped tar of `module_dir` to the binary file `raw`."""
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in _members(module_dir):
                info = _tarinfo(name, path)
                if info.isdir():
                    tar.addfile(info)
                    continue
                with open(path, "rb") as f:
                    tar.addfile(info, f)


def pack_module(module_dir, out_path):
    """Writes `module_dir` as a gzipped tar to `out_path` (replaced atomically)
    and returns the archive's hex sha256.

    The bytes depend only on the files' paths and contents (sorted members,
    fixed mtime, owner and modes, no name or time in the gzip header), so
    packing the same module twice gives the same sha256.
    """
    module_dir = os.path.abspath(module_dir)
    if not os.path.isfile(os.path.join(module_dir, "saved_model.pb")):
        raise ArchiveError(f"{module_dir} is not a SavedModel (no saved_model.pb)")
    out_path = os.path.abspath(out_path)
    if out_path.startswith(module_dir + os.sep):
        raise ArchiveError(f"{out_path} is inside the module it archives")
    parent = os.path.dirname(out_path)
    os.makedirs(parent, exist_ok=True)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as raw:
            _write_tar_gz(module_dir, raw)
        os.chmod(tmp, _FILE_MODE)
    return sha256_file(out_path)


def _check_member(member, archive_path):
    """Raises ArchiveError unless `member` is a plain, non-sparse file or a
    folder whose name stays inside the destination, at most MAX_DEPTH deep."""
    name = member.name
    where = f"{archive_path}: member {name!r}"
    if not (member.isfile() or member.isdir()):
        kind = "link" if member.issym() or member.islnk() else "special file"
        raise ArchiveError(f"refusing {where}: it is a {kind}")
    if member.issparse():
        raise ArchiveError(
            f"refusing {where}: it is a sparse file (its holes would be written "
            "out in full); module archives hold only plain files"
        )
    if name.startswith(("/", "\\")) or pathlib.PureWindowsPath(name).drive:
        raise ArchiveError(f"refusing {where}: absolute path")
    parts = _parts(name)
    if ".." in parts:
        raise ArchiveError(f"refusing {where}: '..' leaves the destination")
    if not parts and not member.isdir():
        raise ArchiveError(f"refusing {where}: empty name")
    if len(parts) > MAX_DEPTH or any(len(os.fsencode(p)) > 255 for p in parts):
        raise ArchiveError(
            f"refusing {archive_path}: a member is nested deeper than {MAX_DEPTH} "
            "folders or has a name over 255 bytes"
        )


def _parts(name):
    """Returns the path components of a member name, without '.' ones."""
    path = pathlib.PurePosixPath(name.replace("\\", "/"))
    return tuple(p for p in path.parts if p != ".")


def expansion_limit(archive_path, max_bytes=None):
    """Returns the bytes `archive_path` may expand to: MAX_EXPANSION times
    its size (at least EXPANSION_FLOOR), and at most `max_bytes`."""
    ratio = max(EXPANSION_FLOOR, MAX_EXPANSION * os.path.getsize(archive_path))
    return ratio if max_bytes is None else min(ratio, max_bytes)


def _limit_error(archive_path, max_bytes):
    size = os.path.getsize(archive_path)
    if max_bytes == max(EXPANSION_FLOOR, MAX_EXPANSION * size):
        return ArchiveError(
            f"refusing {archive_path}: its {size:,} bytes expand to more than "
            f"{max_bytes:,}, over {MAX_EXPANSION}x its size; a module's weights "
            "barely compress, so this is a decompression bomb, not a module"
        )
    return ArchiveError(
        f"refusing {archive_path}: it expands to more than {max_bytes:,} bytes, "
        "the extraction limit; if the module really is that large, raise the "
        "limit (--max_module_mb or ZOO_MAX_MODULE_MB)"
    )


def check_archive(archive_path, max_bytes=None, require_module=False):
    """Returns the archive's members after checking each one (see
    `safe_extract`); raises ArchiveError on the first unsafe or unreadable one.

    Members are read one at a time, so an archive that would expand past
    `max_bytes` is refused at the first member that crosses it, before the
    rest of the stream is even decompressed.
    """
    members, seen, total = [], set(), 0
    try:
        with tarfile.open(archive_path, mode="r:*") as tar:
            for member in tar:
                _check_member(member, archive_path)
                parts = _parts(member.name)
                if parts in seen and not member.isdir():
                    raise ArchiveError(
                        f"refusing {archive_path}: member {member.name!r} appears "
                        "twice (a later copy would silently replace the first)"
                    )
                seen.add(parts)
                total += member.size
                if max_bytes is not None and total > max_bytes:
                    raise _limit_error(archive_path, max_bytes)
                members.append(member)
                if len(members) > MAX_MEMBERS:
                    raise ArchiveError(
                        f"refusing {archive_path}: more than {MAX_MEMBERS:,} members"
                    )
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ArchiveError(
            f"{archive_path} is not a readable tar archive ({reason})"
        ) from None
    if require_module and ("saved_model.pb",) not in seen:
        raise ArchiveError(
            f"refusing {archive_path}: it holds no saved_model.pb at its root, so "
            "it is not a module archive (pack one with zoo-export --archive)"
        )
    return members


def _extract_into(archive_path, root, max_bytes):
    """Writes every (already checked) member of the archive below `root`,
    counting the bytes written against `max_bytes`."""
    written = 0
    with tarfile.open(archive_path, mode="r:*") as tar:
        for member in tar:
            parts = _parts(member.name)
            target = os.path.join(root, *parts) if parts else root
            if member.isdir():
                os.makedirs(target, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tar.extractfile(member) as src, open(target, "xb") as dst:
                for chunk in iter(lambda: src.read(_COPY_CHUNK), b""):
                    written += len(chunk)
                    if max_bytes is not None and written > max_bytes:
                        raise _limit_error(archive_path, max_bytes)
                    dst.write(chunk)


def safe_extract(archive_path, dest_dir, max_bytes=None, require_module=False):
    """Extracts `archive_path` to `dest_dir` (which must not exist yet, or be
    empty) and returns `dest_dir`.

    Every member is checked before anything is written: absolute names, `..`
    components, symlinks, hard links, devices, sparse files, a name given
    twice, more than MAX_DEPTH folders, more than MAX_MEMBERS members, more
    than `max_bytes` in all and (with `require_module`) no saved_model.pb at
    the root raise ArchiveError, and so does expanding to more than
    `expansion_limit` (MAX_EXPANSION times the archive's size). The files
    go to a temporary folder beside `dest_dir` that is renamed onto it, so
    an interrupted or refused extraction never leaves a partial `dest_dir`.
    """
    dest_dir = os.path.abspath(dest_dir)
    if os.path.isdir(dest_dir) and os.listdir(dest_dir):
        raise ArchiveError(f"cannot extract into {dest_dir}: it is not empty")
    max_bytes = expansion_limit(archive_path, max_bytes)
    check_archive(archive_path, max_bytes=max_bytes, require_module=require_module)
    parent = os.path.dirname(dest_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(
        prefix=f".{os.path.basename(dest_dir)}.", suffix=".extract", dir=parent
    )
    try:
        try:
            _extract_into(archive_path, staging, max_bytes)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            reason = str(e) or type(e).__name__
            raise ArchiveError(f"{archive_path} is corrupt ({reason})") from None
        os.chmod(staging, _DIR_MODE)
        swap_in_folder(staging, dest_dir)  # dest_dir is absent or empty
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest_dir
