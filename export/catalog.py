"""The module catalog: named, hash-pinned modules, and verified downloads into
tensorflow_hub's cache.

The catalog is a JSON file (export/catalog.json by default; `path=` or the
ZOO_CATALOG environment variable name another):
  {"catalog_version": 1,
   "entries": [{"name", "arch", "objective", "seed", "handle", "sha256",
                "size", "accuracy", "source", ...}, ...]}
`handle` is where the module lives: an http(s):// or file:// URL or a local
path of a .tar.gz made by export.archive.pack_module (source "zoo"), or the
gs:// folder of an authors' SavedModel (source "authors", "sha256": null,
"needs_import": true). `sha256` is the archive's, `size` its bytes,
`accuracy` a top-1 fraction.

Cache: a module lands in `<cache>/<sha1(handle)>`, the folder tensorflow_hub's
compressed-module resolver uses for the same handle, in the cache folder
tensorflow_hub uses (TFHUB_CACHE_DIR, else --tfhub_cache_dir, else
`<system temp>/tfhub_modules`); so after a pull `hub.load(handle)` works
offline too. Downloads go through export.fetch: bounded by the entry's
`size` and the module size limit, timed, checked against `sha256` before
anything is extracted, staged in `<cache>/<key>.<pid>.<random>.tmp/` and
renamed onto `<cache>/<key>` in one step, with a verification record
`<key>.zoo.json` that every later use rehashes the folder against. Local
archives are cached under their own sha256; imported authors' modules under
sha1("zoo-import:" + handle).
"""

import datetime
import difflib
import json
import os
import re
import shutil
import socket
import tempfile

from export import fetch
from export.archive import ARCHIVE_SUFFIXES, ArchiveError
from zoo.files import write_atomic

CATALOG_VERSION = 1
CATALOG_ENV = "ZOO_CATALOG"
DEFAULT_CATALOG = os.path.join(os.path.dirname(__file__), "catalog.json")
ENTRY_FIELDS = (
    "name",
    "arch",
    "objective",
    "seed",
    "handle",
    "sha256",
    "size",
    "accuracy",
    "source",
)
SOURCES = ("zoo", "authors")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CatalogError(ValueError):
    """A catalog, name, download or cache problem; the message says the fix."""


def catalog_path(path=None):
    """Returns the catalog file to read: `path`, else $ZOO_CATALOG, else the
    catalog shipped with this package."""
    return os.fspath(path or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)


def _check_entry(entry, where):
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: an entry is not a JSON object")
    missing = [k for k in ENTRY_FIELDS if k not in entry]
    if missing:
        raise CatalogError(f"{where}: entry {entry.get('name')!r} lacks {missing}")
    if entry["source"] not in SOURCES:
        raise CatalogError(
            f"{where}: entry {entry['name']!r} has source {entry['source']!r}, "
            f"not one of {SOURCES}"
        )
    sha = entry["sha256"]
    if sha is None and not entry.get("needs_import"):
        raise CatalogError(
            f"{where}: entry {entry['name']!r} has no sha256 and is not marked "
            "needs_import; a downloaded archive must be pinned by its hash"
        )
    if sha is not None and not _SHA256.match(str(sha)):
        raise CatalogError(f"{where}: entry {entry['name']!r} sha256 is not 64 hex")


def load_catalog(path=None):
    """Returns the catalog dict ({"catalog_version", "entries"}) read from
    `catalog_path(path)`, after checking its version and every entry."""
    path = catalog_path(path)
    try:
        with open(path) as f:
            catalog = json.load(f)
    except FileNotFoundError:
        raise CatalogError(
            f"catalog {path} not found; pass --catalog or set {CATALOG_ENV}"
        ) from None
    except (OSError, ValueError) as e:
        raise CatalogError(f"catalog {path} is unreadable: {e}") from None
    version = catalog.get("catalog_version") if isinstance(catalog, dict) else None
    if not isinstance(version, int) or not 1 <= version <= CATALOG_VERSION:
        raise CatalogError(
            f"catalog {path} has catalog_version {version!r}; this code reads "
            f"versions 1 to {CATALOG_VERSION} (upgrade if it is newer)"
        )
    entries = catalog.get("entries")
    if not isinstance(entries, list):
        raise CatalogError(f"catalog {path} has no list of entries")
    names = set()
    for entry in entries:
        _check_entry(entry, f"catalog {path}")
        if entry["name"] in names:
            raise CatalogError(f"catalog {path} names {entry['name']!r} twice")
        names.add(entry["name"])
    catalog["path"] = path
    return catalog


def find_entry(name, catalog=None, path=None):
    """Returns the entry called `name`; raises CatalogError naming the closest
    names otherwise."""
    catalog = catalog or load_catalog(path)
    by_name = {e["name"]: e for e in catalog["entries"]}
    if name in by_name:
        return by_name[name]
    close = difflib.get_close_matches(name, list(by_name), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise CatalogError(
        f"no module named '{name}' in catalog {catalog['path']}; {hint}"
        "zoo-pull --list lists them all"
    )


def format_table(catalog):
    """Returns the catalog as an aligned text table, one line per entry."""
    header = ("name", "source", "arch", "objective", "seed", "accuracy", "size_mb")
    rows = [header]
    for e in catalog["entries"]:
        acc = f"{e['accuracy']:.3f}" if isinstance(e["accuracy"], float) else "-"
        size = f"{e['size'] / 1e6:.1f}" if e["size"] else "-"
        what = (e["name"], e["source"], e["arch"], e["objective"], str(e["seed"]))
        rows.append(what + (acc, size))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows
    )


def tfhub_cache_dir():
    """Returns the cache folder tensorflow_hub uses (its resolver.tfhub_cache_dir
    with use_temp=True): $TFHUB_CACHE_DIR, else the --tfhub_cache_dir flag when
    tensorflow_hub defined it, else <system temp>/tfhub_modules."""
    cache_dir = os.environ.get("TFHUB_CACHE_DIR", "")
    if not cache_dir:
        from absl import flags

        if "tfhub_cache_dir" in flags.FLAGS:
            cache_dir = flags.FLAGS["tfhub_cache_dir"].value or ""
    return cache_dir or os.path.join(tempfile.gettempdir(), "tfhub_modules")


def hub_cache_key(handle):
    """Returns the folder name tensorflow_hub caches `handle` under."""
    return fetch.cache_key(handle)


def clean_stale_staging(cache_dir):
    """Deletes the .tmp folders killed pulls left in `cache_dir`; returns how
    many (export.fetch.clean_stale_staging)."""
    return fetch.clean_stale_staging(cache_dir)


def _write_descriptor(handle, module_dir, sha256):
    """Writes tensorflow_hub's `<module_dir>.descriptor.txt` (informative only)
    with the archive's sha256 added."""
    text = (
        f"Module: {handle}\nDownload Time: {datetime.datetime.now()}\n"
        f"Downloader Hostname: {socket.gethostname()} (PID:{os.getpid()})\n"
        f"Archive sha256: {sha256}\n"
    )
    write_atomic(f"{module_dir}.descriptor.txt", text)


def _network_error(entry, module_dir, error):
    return CatalogError(
        f"cannot download {entry['name']} from {entry['handle']} "
        f"({fetch.describe_error(error)}); it is not in the cache ({module_dir}): "
        "with no network, copy a cache that holds it there (or set "
        "TFHUB_CACHE_DIR to it), or pass a local module directory or .tar.gz"
    )


def _pull_archive(entry, cache_dir, report, limits):
    handle = entry["handle"]
    module_dir = os.path.join(cache_dir, hub_cache_key(handle))
    name = entry["name"]
    try:
        path = fetch.fetch_module(
            handle,
            cache_dir,
            pin=entry["sha256"],
            size=entry.get("size") or None,
            limits=limits,
            report=lambda line: report(f"{name}: {line}"),
        )
    except fetch.DownloadError as e:
        raise _network_error(entry, module_dir, e.__cause__ or e) from None
    except fetch.FetchError as e:
        raise CatalogError(f"{name}: {e}") from None
    except ArchiveError as e:
        raise ArchiveError(f"{name}: {e}; nothing was cached") from None
    _write_descriptor(handle, module_dir, entry["sha256"])
    return path


def _pull_and_import(entry, cache_dir, report):
    """Imports an authors' SavedModel (no published hash) into the cache."""
    handle = entry["handle"]
    key = "zoo-import:" + handle
    module_dir = os.path.join(cache_dir, hub_cache_key(key))
    if fetch.cached_module(module_dir, key):
        report(f"{entry['name']}: cached in {module_dir}")
        return module_dir
    report(
        f"{entry['name']}: no sha256 is published for {handle}, so it cannot be "
        "verified; reading it through tensorflow_hub and importing it with "
        "export.importer"
    )
    import tensorflow_hub as hub

    from export.importer import DEFAULT_INPUT_SCALE, import_authors_module

    try:
        source = hub.resolve(handle)
    except Exception as e:  # noqa: BLE001 - any fetch failure means the same
        raise _network_error(entry, module_dir, e) from None
    try:
        fetch.scan(source, handle)  # The importer runs the authors' graph.
    except fetch.FetchError as e:
        raise CatalogError(f"{entry['name']}: {e}") from None
    staging = fetch.new_staging(module_dir)
    try:
        staged, _ = import_authors_module(
            source,
            os.path.join(staging, "module"),
            loss=entry["objective"],
            seed=entry["seed"],
            input_scale=entry.get("input_scale", DEFAULT_INPUT_SCALE),
        )
        fetch.scan(staged, handle)
        fetch.install(staged, module_dir)
        fetch.write_record(module_dir, key, None, pinned=False)
        _write_descriptor(handle, module_dir, "unverified (imported)")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report(f"{entry['name']}: imported to {module_dir}")
    return module_dir


def pull(name_or_entry, cache_dir=None, report=print, catalog=None, limits=None):
    """Returns the local module folder of a catalog entry (or entry name),
    downloading, verifying and extracting it into the cache unless it is
    there already.

    `catalog` is a catalog dict or a catalog file path (default
    `catalog_path()`); `report` receives one progress line per step;
    `limits` (export.fetch.FetchLimits, default from the environment) bound
    the download. A cached copy is used only after its files rehash to what
    was verified (export.fetch.cached_module).
    """
    if isinstance(name_or_entry, dict):
        entry = name_or_entry
        _check_entry(entry, "catalog entry")
    else:
        if not isinstance(catalog, dict):
            catalog = load_catalog(catalog)
        entry = find_entry(name_or_entry, catalog)
    cache_dir = os.path.abspath(cache_dir or tfhub_cache_dir())
    os.makedirs(cache_dir, exist_ok=True)
    clean_stale_staging(cache_dir)
    if entry.get("needs_import"):
        return _pull_and_import(entry, cache_dir, report)
    return _pull_archive(entry, cache_dir, report, limits)


def extract_local_archive(archive_path, cache_dir=None):
    """Returns the cache folder holding the local module archive
    `archive_path` (keyed by its sha256, rehashed on every call), extracting
    it there unless a verified copy is."""
    return fetch.extract_local(archive_path, cache_dir or tfhub_cache_dir())


def resolve_catalog_handle(handle, cache_dir=None, catalog=None, report=None):
    """Returns the local module folder for `handle` when it is a local
    .tar.gz/.tgz archive or a catalog entry's name or handle, else None (let
    the caller resolve it: a folder, or a URL for tensorflow_hub)."""
    report = report or (lambda line: None)
    path = os.path.expanduser(handle)
    if os.path.isfile(path) and handle.endswith(ARCHIVE_SUFFIXES):
        return extract_local_archive(path, cache_dir)
    if os.path.exists(path):
        return None
    if not isinstance(catalog, dict):
        catalog = load_catalog(catalog)
    for entry in catalog["entries"]:
        if handle in (entry["name"], entry["handle"]):
            return pull(entry, cache_dir=cache_dir, report=report)
    return None
