"""Bounded, timed, verified module downloads into tensorflow_hub's cache.

Every module that comes from elsewhere (a catalog entry, `--module=URL`, a
local .tar.gz) reaches the cache through `fetch_module` here:

* Bounded: the download stops at `FetchLimits.max_bytes` (a catalog entry's
  exact `size` when it has one) and the archive is refused, before anything
  is written, when its members add up to more than that
  (export.archive.safe_extract also refuses sparse, duplicate, linked and
  too-deep members and archives without saved_model.pb at the root).
* Timed: each read waits at most READ_TIMEOUT_S and the whole download at
  most `FetchLimits.deadline_s`, so neither a silent nor a trickling server
  holds a run forever.
* Scanned: the extracted module passes the op-safety scan
  (export.safety.check_module) before it is installed, so a module the
  benchmark would refuse never lands in the cache as usable.
* Verified on every use: beside each cached module folder `<key>` lies
  `<key>.zoo.json`, written only after a verified download, holding the
  handle, the archive's sha256 and the sha256 of the extracted tree
  (zoo.provenance.sha256_tree, which opens no link or FIFO). A cached folder
  is used only when that record names the same handle, the same pin, and the
  tree still hashes the same; a folder tensorflow_hub filled on its own (no
  record) or one changed since is fetched again. Checking costs one hash of
  the module's files per use (about 0.3 s per 100 MB here).

Limits come from ZOO_MAX_MODULE_MB (default 8192) and ZOO_DOWNLOAD_DEADLINE_S
(default 3600); the CLIs' --max_module_mb and --download_deadline_s set them.
A download goes to `<cache>/<key>.<pid>.<random>.tmp/` and is renamed onto
`<cache>/<key>` in one step; a refused or killed fetch leaves nothing else
(the next fetch deletes a killed one's .tmp folder).
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
import uuid

from export.archive import ARCHIVE_SUFFIXES, ArchiveError, safe_extract
from zoo.files import swap_in_folder, write_atomic
from zoo.provenance import process_alive, sha256_file, sha256_tree

MAX_MODULE_MB_ENV = "ZOO_MAX_MODULE_MB"
DEADLINE_ENV = "ZOO_DOWNLOAD_DEADLINE_S"
DEFAULT_MAX_MODULE_MB = 8192
DEFAULT_DEADLINE_S = 3600.0
READ_TIMEOUT_S = 60.0
RECORD_SUFFIX = ".zoo.json"
_CHUNK = 1 << 20
_STAGING = re.compile(r"^(?P<key>[0-9a-f]{40,64})\.(?P<pid>\d+)\.[0-9a-f]{32}\.tmp$")
_COMPRESSED_QUERY = ("tf-hub-format", "compressed")


class FetchError(ValueError):
    """A download that failed, broke a limit or did not verify; one line."""


class DownloadError(FetchError):
    """The source could not be reached or read (network, HTTP status)."""


@dataclasses.dataclass(frozen=True)
class FetchLimits:
    """What one module fetch may cost: bytes downloaded and extracted, and
    seconds for the whole download."""

    max_bytes: int = DEFAULT_MAX_MODULE_MB << 20
    deadline_s: float = DEFAULT_DEADLINE_S

    def __post_init__(self):
        if not self.max_bytes > 0:
            raise FetchError(
                f"the module size limit must be positive, got {self.max_bytes}"
            )
        if not self.deadline_s > 0:
            raise FetchError(
                f"the download deadline must be positive, got {self.deadline_s}"
            )

    @classmethod
    def from_env(cls):
        """Returns the limits set by ZOO_MAX_MODULE_MB / ZOO_DOWNLOAD_DEADLINE_S."""
        return cls(
            max_bytes=int(
                _env_number(MAX_MODULE_MB_ENV, DEFAULT_MAX_MODULE_MB) * 2**20
            ),
            deadline_s=_env_number(DEADLINE_ENV, DEFAULT_DEADLINE_S),
        )


def _env_number(name, default):
    value = os.environ.get(name, "")
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number > 0 or number == float("inf"):
        raise FetchError(f"{name}={value!r} must be a positive number")
    return number


def set_limits(max_module_mb=None, deadline_s=None):
    """Sets this process's limits (the CLIs' --max_module_mb and
    --download_deadline_s); None keeps the current one. Checked here."""
    for name, value in ((MAX_MODULE_MB_ENV, max_module_mb), (DEADLINE_ENV, deadline_s)):
        if value is None:
            continue
        if not (isinstance(value, (int, float)) and value > 0):
            flag = (
                "--max_module_mb"
                if name == MAX_MODULE_MB_ENV
                else "--download_deadline_s"
            )
            raise FetchError(f"{flag} must be positive, got {value}")
        os.environ[name] = str(value)
    return FetchLimits.from_env()


@contextlib.contextmanager
def limits_set(max_module_mb=None, deadline_s=None):
    """Sets the fetch limits (as `set_limits`) for the `with` block only and
    restores the environment after it, so library calls leave no trace."""
    saved = {name: os.environ.get(name) for name in (MAX_MODULE_MB_ENV, DEADLINE_ENV)}
    try:
        yield set_limits(max_module_mb, deadline_s)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cache_key(handle):
    """Returns the folder name tensorflow_hub caches `handle` under: the hex
    sha1 of the handle (compressed_module_resolver._module_dir)."""
    return hashlib.sha1(handle.encode("utf8")).hexdigest()


def clean_stale_staging(cache_dir):
    """Deletes the .tmp folders that fetches killed mid-way left in
    `cache_dir` (their process no longer runs); returns how many."""
    removed = 0
    try:
        names = os.listdir(cache_dir)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for name in names:
        match = _STAGING.match(name)
        if match and not process_alive(int(match["pid"])):
            shutil.rmtree(os.path.join(cache_dir, name), ignore_errors=True)
            removed += 1
    return removed


@contextlib.contextmanager
def cache_folder(cache_dir):
    """Yields the absolute `cache_dir`, created if needed; a fetch that fails
    removes it again when it created it and left it empty."""
    cache_dir = os.path.abspath(cache_dir)
    created = not os.path.isdir(cache_dir)
    os.makedirs(cache_dir, exist_ok=True)
    try:
        yield cache_dir
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(cache_dir)
        raise


def new_staging(module_dir):
    """Creates and returns a fresh staging folder beside `module_dir`."""
    staging = f"{module_dir}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    os.makedirs(staging)
    return staging


# --- the verification record -------------------------------------------------


def read_record(module_dir):
    """Returns the verification record of a cached module folder, or None."""
    try:
        with open(module_dir + RECORD_SUFFIX) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(module_dir, handle, archive_sha256, pinned):
    """Records that `module_dir` was fetched from `handle` and verified now."""
    record = {
        "handle": handle,
        "archive_sha256": archive_sha256,
        "pinned": bool(pinned),
        "tree_sha256": sha256_tree(module_dir),
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(module_dir + RECORD_SUFFIX, json.dumps(record, indent=1))
    return record


def cached_module(module_dir, handle, pin=None):
    """Returns `module_dir` when it holds a module fetched and verified from
    `handle` (with archive sha256 `pin`, when given) whose files are unchanged
    since; else None. Opens no link or FIFO."""
    if not os.path.isfile(os.path.join(module_dir, "saved_model.pb")):
        return None
    record = read_record(module_dir)
    if not record or record.get("handle") != handle:
        return None
    if pin is not None and record.get("archive_sha256") != pin:
        return None
    try:
        tree = sha256_tree(module_dir)
    except (OSError, ValueError):
        return None
    return module_dir if tree == record.get("tree_sha256") else None


def install(staged, module_dir):
    """Renames the verified `staged` folder onto `module_dir`, moving aside
    (then deleting) whatever unverified folder was there."""
    try:
        swap_in_folder(staged, module_dir)
    except OSError:  # A concurrent fetch won; it holds the same verified bytes.
        if not os.path.isfile(os.path.join(module_dir, "saved_model.pb")):
            raise


# --- Kaggle Models handles ---------------------------------------------------

KAGGLE_URL_ENV = "ZOO_KAGGLE_URL"
DEFAULT_KAGGLE_URL = "https://www.kaggle.com"
KAGGLE_PREFIX = "kaggle:"
_KAGGLE_FORM = "kaggle:OWNER/MODEL/tensorFlow2/VARIATION/VERSION"


def is_kaggle_handle(handle):
    """Returns whether `handle` is a Kaggle Models handle: `kaggle:` followed by
    owner/model/framework/variation/version, or a kaggle.com/models URL."""
    if handle.startswith(KAGGLE_PREFIX):
        return True
    parsed = urllib.parse.urlparse(handle)
    host = parsed.hostname or ""
    return (host == "kaggle.com" or host.endswith(".kaggle.com")) and (
        parsed.path.startswith("/models/")
    )


def kaggle_url(handle):
    """Returns the download URL of a Kaggle Models handle (before the
    compressed-format query): <base>/models/OWNER/MODEL/FRAMEWORK/VARIATION/
    VERSION, with <base> https://www.kaggle.com or $ZOO_KAGGLE_URL (a mirror).
    The long URL form (.../frameworks/F/variations/V/versions/N) is
    accepted. Raises FetchError for another shape or a framework that is
    not TensorFlow 2 (the benchmark reads TF2 SavedModels)."""
    base = (os.environ.get(KAGGLE_URL_ENV) or DEFAULT_KAGGLE_URL).rstrip("/")
    if handle.startswith(KAGGLE_PREFIX):
        parts = handle[len(KAGGLE_PREFIX) :].strip("/").split("/")
    else:
        parsed = urllib.parse.urlparse(handle)
        base = f"{parsed.scheme}://{parsed.netloc}"
        parts = parsed.path.strip("/").split("/")[1:]  # after "models"
        if len(parts) == 8 and parts[2::2] == ["frameworks", "variations", "versions"]:
            parts = parts[:2] + parts[3::2]
    if len(parts) != 5 or not all(parts) or not parts[4].isdigit():
        raise FetchError(
            f"{handle} is not a Kaggle Models handle; write {_KAGGLE_FORM} or "
            "https://www.kaggle.com/models/OWNER/MODEL/tensorFlow2/VARIATION/VERSION"
        )
    if parts[2].lower() != "tensorflow2":
        raise FetchError(
            f"{handle} is a {parts[2]} instance; the benchmark reads TensorFlow 2 "
            "SavedModels (framework tensorFlow2)"
        )
    return f"{base}/models/{'/'.join(parts)}"


# --- downloads ---------------------------------------------------------------


def download_url(handle):
    """Returns the address an archive is read from: http(s) handles that are
    not archives get tensorflow_hub's `tf-hub-format=compressed` query (how
    tfhub.dev and Kaggle Models serve a module as one .tar.gz)."""
    parsed = urllib.parse.urlparse(handle)
    if parsed.scheme not in ("http", "https") or parsed.path.endswith(ARCHIVE_SUFFIXES):
        return handle
    query = urllib.parse.parse_qsl(parsed.query)
    if _COMPRESSED_QUERY not in query:
        query.append(_COMPRESSED_QUERY)
    return urllib.parse.urlunparse(parsed._replace(query=urllib.parse.urlencode(query)))


def _open(handle, timeout):
    scheme = urllib.parse.urlparse(handle).scheme
    if scheme in ("http", "https", "file"):
        return urllib.request.urlopen(handle, timeout=timeout)
    if scheme == "gs":
        import tensorflow as tf

        return tf.io.gfile.GFile(handle, "rb")
    return open(os.path.expanduser(handle), "rb")


def download(handle, out_path, limits=None, max_bytes=None):
    """Copies `handle` (an http(s)/file/gs URL or a path) to `out_path` within
    `limits` (`max_bytes` overrides its byte limit, e.g. a catalog entry's
    exact size) and returns the hex sha256 of the bytes. Raises FetchError
    when the server announces or sends more, or the deadline passes."""
    limits = limits or FetchLimits.from_env()
    max_bytes = max_bytes or limits.max_bytes
    deadline = time.monotonic() + limits.deadline_s
    digest, total = hashlib.sha256(), 0
    with _open(handle, min(READ_TIMEOUT_S, limits.deadline_s)) as src:
        announced = getattr(src, "headers", None)
        announced = announced.get("Content-Length") if announced else None
        if announced and announced.isdigit() and int(announced) > max_bytes:
            raise FetchError(
                f"{handle} is {int(announced):,} bytes, over the {max_bytes:,}-byte "
                "limit; nothing was cached (raise --max_module_mb if it is right)"
            )
        read = getattr(src, "read1", src.read)  # read1: bytes as they arrive
        with open(out_path, "wb") as dst:
            while True:
                if time.monotonic() > deadline:
                    raise FetchError(
                        f"{handle} did not finish within {limits.deadline_s:g} s "
                        f"({total:,} bytes so far); nothing was cached (raise "
                        "--download_deadline_s for a slow link)"
                    )
                chunk = read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise FetchError(
                        f"{handle} sent more than {max_bytes:,} bytes, the limit; "
                        "nothing was cached (raise --max_module_mb if it is right)"
                    )
                digest.update(chunk)
                dst.write(chunk)
    return digest.hexdigest()


def describe_error(error):
    """Returns one line saying why a download failed."""
    if isinstance(error, (FetchError, ArchiveError)):
        return str(error)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, urllib.error.HTTPError):
            return f"the server answered HTTP {error.code} {error.reason}"
        if isinstance(error, urllib.error.URLError):
            return f"no connection ({error.reason})"
        if isinstance(error, (TimeoutError, OSError)) and "timed out" in str(error):
            return f"no data for {READ_TIMEOUT_S:g} s (timed out)"
        error = error.__cause__ or error.__context__
    return "the download failed"


def fetch_module(handle, cache_dir, *, pin=None, size=None, limits=None, report=None):
    """Returns the cached, verified module folder of `handle`, downloading
    and extracting it unless a verified copy is cached.

    `pin` is the archive's expected sha256 (catalog entries), `size` its
    expected byte count (the download stops beyond it). Raises FetchError or
    ArchiveError with one line; the cache then holds nothing new.
    """
    with cache_folder(cache_dir) as cache_dir:
        return _fetch_module(handle, cache_dir, pin, size, limits, report)


def _fetch_module(handle, cache_dir, pin, size, limits, report):
    report = report or (lambda line: None)
    limits = limits or FetchLimits.from_env()
    clean_stale_staging(cache_dir)
    module_dir = os.path.join(cache_dir, cache_key(handle))
    if cached_module(module_dir, handle, pin):
        report(f"cached and verified in {module_dir}")
        return module_dir
    if os.path.lexists(module_dir):
        report(
            f"{module_dir} was not written by a verified fetch of {handle} or has "
            "changed since; fetching it again"
        )
    report(f"downloading {handle}")
    staging = new_staging(module_dir)
    try:
        archive = os.path.join(staging, "module.tar.gz")
        try:
            got = download(download_url(handle), archive, limits, max_bytes=size)
        except FetchError:
            raise
        except Exception as e:  # noqa: BLE001 - any fetch failure is one line
            raise DownloadError(f"cannot download {handle}: {describe_error(e)}") from e
        if pin is not None and got != pin:
            raise FetchError(
                f"sha256 mismatch for {handle}: expected {pin}, got {got}; "
                "nothing was cached"
            )
        staged = os.path.join(staging, "module")
        safe_extract(archive, staged, max_bytes=limits.max_bytes, require_module=True)
        os.remove(archive)
        scan(staged, handle)
        install(staged, module_dir)
        write_record(module_dir, handle, got, pinned=pin is not None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    pinned = "sha256 verified" if pin else f"sha256 {got[:12]} (unpinned)"
    report(f"{pinned}, extracted to {module_dir}")
    return module_dir


def scan(module_dir, handle):
    """Raises FetchError unless the extracted module passes the op-safety
    scan (export.safety): a module that would be refused is never cached as
    usable, so none waits in the cache for the first benchmark run."""
    from export import safety  # protobuf and TensorFlow: not at CLI start-up

    try:
        safety.check_module(module_dir)
    except (OSError, ValueError) as e:
        raise FetchError(f"refusing {handle}: {e}; nothing was cached") from None


def extract_local(archive_path, cache_dir, limits=None):
    """Returns the cached module folder of a local .tar.gz, keyed by the
    archive's sha256 (rehashed on every call), extracting it unless a
    verified copy is cached."""
    with cache_folder(cache_dir) as cache_dir:
        return _extract_local(archive_path, cache_dir, limits)


def _extract_local(archive_path, cache_dir, limits):
    limits = limits or FetchLimits.from_env()
    clean_stale_staging(cache_dir)
    sha = sha256_file(archive_path)
    module_dir = os.path.join(cache_dir, sha)
    if cached_module(module_dir, sha, pin=sha):
        return module_dir
    staging = new_staging(module_dir)
    try:
        staged = os.path.join(staging, "module")
        safe_extract(
            archive_path, staged, max_bytes=limits.max_bytes, require_module=True
        )
        scan(staged, archive_path)
        install(staged, module_dir)
        write_record(module_dir, sha, sha, pinned=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return module_dir
