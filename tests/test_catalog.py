"""Module archives and the catalog: deterministic packing in tensorflow_hub's
layout, refused unsafe archives, and verified pulls from a real HTTP server
(hash mismatch, killed download, offline cache hit, CLI errors)."""

import hashlib
import http.server
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse

import numpy as np
import pytest
import tensorflow as tf

from export.archive import ArchiveError, pack_module, safe_extract
from export.catalog import (
    CatalogError,
    find_entry,
    hub_cache_key,
    load_catalog,
    pull,
    resolve_catalog_handle,
    tfhub_cache_dir,
)
from zoo.provenance import sha256_file, sha256_tree

IMAGES = np.random.RandomState(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


class ModuleServer:
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving `routes`
    (path -> bytes). Paths in `stall` get their Content-Length and half their
    bytes, then nothing until the server stops."""

    def __init__(self, routes):
        self.routes = dict(routes)
        self.stall = set()
        self.stopped = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path  # hub adds a query
                body = server.routes.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.stall:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    server.stopped.wait(120)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self):
        if not self.stopped.is_set():
            self.stopped.set()
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture(scope="module")
def packed(exported_module, tmp_path_factory):
    """Returns (archive path, sha256, bytes) of the exported module, packed."""
    out = tmp_path_factory.mktemp("archives") / "digits_cosine.tar.gz"
    sha = pack_module(exported_module[0], str(out))
    return str(out), sha, out.read_bytes()


def _tar_gz(members):
    """Returns the bytes of a .tar.gz holding `members`: (TarInfo, data)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


UNSAFE_MEMBERS = {
    "dotdot": (_member("../x"), b"escaped"),
    "nested_dotdot": (_member("variables/../../x"), b"escaped"),
    "absolute": (_member("/tmp/zoo_abs_x"), b"escaped"),
    "symlink": (_member("link", tarfile.SYMTYPE, "/etc/passwd"), None),
    "hardlink": (_member("hard", tarfile.LNKTYPE, "saved_model.pb"), None),
    "device": (_member("dev", tarfile.CHRTYPE), None),
    "fifo": (_member("fifo", tarfile.FIFOTYPE), None),
}


def _unsafe_archive(kind):
    return _tar_gz([(_member("saved_model.pb"), b"pb"), UNSAFE_MEMBERS[kind]])


@pytest.fixture
def server(packed):
    """A ModuleServer with the packed module at three paths: good, served with
    a wrong catalog hash, and stalled (for the killed download)."""
    body = packed[2]
    routes = {
        "/digits_cosine.tar.gz": body,
        "/bad/digits_cosine.tar.gz": body,
        "/slow/digits_cosine.tar.gz": body,
        "/evil.tar.gz": _unsafe_archive("dotdot"),
    }
    srv = ModuleServer(routes)
    srv.stall.add("/slow/digits_cosine.tar.gz")
    yield srv
    srv.stop()


def _entry(name, handle, sha256, size):
    return {
        "name": name,
        "source": "zoo",
        "arch": "resnet50",
        "objective": "cosine_softmax",
        "seed": 0,
        "handle": handle,
        "sha256": sha256,
        "size": size,
        "accuracy": 0.5,
    }


@pytest.fixture
def catalog_file(server, packed, tmp_path):
    """Writes a catalog of the served modules; returns its path."""
    _, sha, body = packed
    evil = server.routes["/evil.tar.gz"]
    entries = [
        _entry("digits_cosine", server.url("/digits_cosine.tar.gz"), sha, len(body)),
        _entry(
            "digits_bad", server.url("/bad/digits_cosine.tar.gz"), "0" * 64, len(body)
        ),
        _entry("digits_slow", server.url("/slow/digits_cosine.tar.gz"), sha, len(body)),
        _entry(
            "digits_evil",
            server.url("/evil.tar.gz"),
            hashlib.sha256(evil).hexdigest(),
            len(evil),
        ),
    ]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"catalog_version": 1, "entries": entries}))
    return str(path)


def _module_dir(cache, catalog_file, name):
    handle = find_entry(name, load_catalog(catalog_file))["handle"]
    return os.path.join(cache, hub_cache_key(handle))


def test_pack_is_deterministic_in_tensorflow_hubs_layout(exported_module, tmp_path):
    path = exported_module[0]
    first = pack_module(path, str(tmp_path / "a.tar.gz"))
    os.utime(os.path.join(path, "saved_model.pb"), (1e9, 1e9))  # mtimes ignored
    assert pack_module(path, str(tmp_path / "b.tar.gz")) == first
    assert first == sha256_file(tmp_path / "a.tar.gz")
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert "saved_model.pb" in names and "metadata.json" in names
    assert not any(n.startswith(("/", "./", "..")) for n in names)
    assert names.index("variables") < names.index("variables/variables.index")
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "b.tar.gz"]  # no temp left
    with pytest.raises(ArchiveError, match="not a SavedModel"):
        pack_module(str(tmp_path), str(tmp_path / "c.tar.gz"))


def test_safe_extract_round_trips_the_module(exported_module, packed, tmp_path):
    dest = tmp_path / "module"
    assert safe_extract(packed[0], str(dest)) == str(dest)
    assert sha256_tree(dest) == exported_module[1]
    with pytest.raises(ArchiveError, match="not empty"):
        safe_extract(packed[0], str(dest))


@pytest.mark.parametrize("kind", sorted(UNSAFE_MEMBERS))
def test_unsafe_archives_are_refused(kind, tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(_unsafe_archive(kind))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ArchiveError, match="refusing") as error:
        safe_extract(str(archive), str(work / "dest"))
    assert "\n" not in str(error.value)
    assert os.listdir(work) == []  # nothing extracted, no temp folder left
    assert not (tmp_path / "x").exists()
    assert not os.path.exists("/tmp/zoo_abs_x")


def test_a_corrupt_archive_is_refused(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ArchiveError, match="not a readable tar archive"):
        safe_extract(str(archive), str(tmp_path / "dest"))


def test_pull_verifies_extracts_and_loads(
    exported_module, catalog_file, tmp_path, monkeypatch
):
    cache = str(tmp_path / "cache")
    lines = []
    path = pull(
        "digits_cosine", cache_dir=cache, report=lines.append, catalog=catalog_file
    )
    assert path == _module_dir(cache, catalog_file, "digits_cosine")
    assert any("sha256 verified" in line for line in lines)
    assert sha256_tree(path) == exported_module[1]
    expected = tf.saved_model.load(exported_module[0])(IMAGES)
    np.testing.assert_allclose(tf.saved_model.load(path)(IMAGES), expected, atol=1e-5)
    # The folder is tensorflow_hub's own cache folder for this handle.
    hub = pytest.importorskip("tensorflow_hub")
    monkeypatch.setenv("TFHUB_CACHE_DIR", cache)
    assert tfhub_cache_dir() == cache
    handle = find_entry("digits_cosine", load_catalog(catalog_file))["handle"]
    assert hub.resolve(handle) == path


def test_tensorflow_hub_downloads_a_packed_archive(
    exported_module, server, tmp_path, monkeypatch
):
    hub = pytest.importorskip("tensorflow_hub")
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    path = hub.resolve(server.url("/digits_cosine.tar.gz"))
    assert sha256_tree(path) == exported_module[1]
    expected = tf.saved_model.load(exported_module[0])(IMAGES)
    np.testing.assert_allclose(hub.load(path)(IMAGES), expected, atol=1e-5)


def test_hash_mismatch_caches_nothing(catalog_file, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(CatalogError) as error:
        pull(
            "digits_bad",
            cache_dir=str(cache),
            report=lambda _: None,
            catalog=catalog_file,
        )
    message = str(error.value)
    assert f"expected {'0' * 64}, got " in message
    assert "nothing was cached" in message and "\n" not in message
    assert os.listdir(cache) == []


def test_pull_refuses_an_unsafe_archive_with_a_matching_hash(catalog_file, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ArchiveError, match="'..' leaves the destination"):
        pull(
            "digits_evil",
            cache_dir=str(cache),
            report=lambda _: None,
            catalog=catalog_file,
        )
    assert os.listdir(cache) == []
    assert not (tmp_path / "x").exists()


def _pull_cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "export.pull_main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        **kwargs,
    )


def _partial_download(cache, deadline_s=60):
    """Waits until a pull has written part of its archive to a staging folder;
    returns that archive's size."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        for name in os.listdir(cache) if os.path.isdir(cache) else []:
            archive = os.path.join(cache, name, "module.tar.gz")
            if name.endswith(".tmp") and os.path.isfile(archive):
                size = os.path.getsize(archive)
                if size:
                    return size
        time.sleep(0.05)
    raise AssertionError("the pull never started writing its download")


def test_a_killed_download_leaves_no_module(server, packed, catalog_file, tmp_path):
    cache = str(tmp_path / "cache")
    proc = _pull_cli(f"--catalog={catalog_file}", f"--cache_dir={cache}", "digits_slow")
    try:
        written = _partial_download(cache)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 0 < written < len(packed[2])
    module_dir = _module_dir(cache, catalog_file, "digits_slow")
    assert not os.path.exists(module_dir)
    assert any(n.endswith(".tmp") for n in os.listdir(cache))  # the leftover
    server.stall.clear()
    path = pull(
        "digits_slow", cache_dir=cache, report=lambda _: None, catalog=catalog_file
    )
    assert path == module_dir and os.path.isfile(os.path.join(path, "saved_model.pb"))
    assert not any(n.endswith(".tmp") for n in os.listdir(cache))  # cleaned


def test_offline_cache_hit_and_offline_miss(server, catalog_file, tmp_path):
    cache = str(tmp_path / "cache")
    first = pull(
        "digits_cosine", cache_dir=cache, report=lambda _: None, catalog=catalog_file
    )
    server.stop()
    lines = []
    again = pull(
        "digits_cosine", cache_dir=cache, report=lines.append, catalog=catalog_file
    )
    assert again == first and lines == [
        f"digits_cosine: cached and verified in {first}"
    ]
    with pytest.raises(CatalogError) as error:
        pull(
            "digits_slow", cache_dir=cache, report=lambda _: None, catalog=catalog_file
        )
    message = str(error.value)
    assert message.startswith("cannot download digits_slow from http://127.0.0.1")
    assert "it is not in the cache" in message and "\n" not in message


def test_cli_pulls_lists_and_rejects_an_unknown_name(catalog_file, tmp_path, warm):
    cache = str(tmp_path / "cache")
    pulled = warm.run(
        "export.pull_main",
        f"--catalog={catalog_file}",
        f"--cache_dir={cache}",
        "digits_cosine",
        env=ENV,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == _module_dir(cache, catalog_file, "digits_cosine")
    listing = warm.run(
        "export.pull_main", "--list", env={**ENV, "ZOO_CATALOG": catalog_file}
    )
    assert listing.returncode == 0, listing.stderr
    rows = listing.stdout.splitlines()
    assert rows[0].split()[:2] == ["name", "source"] and len(rows) == 5
    unknown = warm.run(
        "export.pull_main", "digits_cosin", env={**ENV, "ZOO_CATALOG": catalog_file}
    )
    assert unknown.returncode == 2
    errors = [line for line in unknown.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, unknown.stderr
    assert "no module named 'digits_cosin'" in errors[0]
    assert "did you mean digits_cosine" in errors[0] and "--list" in errors[0]


def test_resolve_catalog_handle(packed, catalog_file, tmp_path):
    cache = str(tmp_path / "cache")
    archive, sha, _ = packed
    local = resolve_catalog_handle(archive, cache_dir=cache, catalog=catalog_file)
    assert local == os.path.join(cache, sha)  # local archives: keyed by sha256
    assert (
        resolve_catalog_handle(archive, cache_dir=cache, catalog=catalog_file) == local
    )
    by_name = resolve_catalog_handle(
        "digits_cosine", cache_dir=cache, catalog=catalog_file
    )
    assert by_name == _module_dir(cache, catalog_file, "digits_cosine")
    assert resolve_catalog_handle(str(tmp_path), catalog=catalog_file) is None
    assert resolve_catalog_handle("no_such_module", catalog=catalog_file) is None
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(_unsafe_archive("symlink"))
    with pytest.raises(ArchiveError, match="it is a link"):
        resolve_catalog_handle(str(evil), cache_dir=cache, catalog=catalog_file)


def test_benchmark_resolves_a_local_archive(packed, tmp_path, monkeypatch):
    from benchmark.modules.loading import resolve_handle

    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "cache"))
    path = resolve_handle(packed[0])
    assert path == os.path.join(str(tmp_path / "cache"), packed[1])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"catalog_version": 99}, "catalog_version 99"),
        ({"entries": {}}, "no list of entries"),
        ({"drop": "sha256"}, "lacks \\['sha256'\\]"),
        ({"sha256": None}, "no sha256 and is not marked needs_import"),
        ({"sha256": "abc"}, "sha256 is not 64 hex"),
        ({"source": "elsewhere"}, "source 'elsewhere'"),
        ({"duplicate": True}, "names 'm' twice"),
    ],
)
def test_bad_catalogs_are_rejected(change, message, tmp_path):
    entry = _entry("m", "http://127.0.0.1:9/m.tar.gz", "a" * 64, 1)
    catalog = {"catalog_version": 1, "entries": [entry]}
    if "drop" in change:
        del entry[change["drop"]]
    elif "duplicate" in change:
        catalog["entries"].append(dict(entry))
    elif set(change) & {"catalog_version", "entries"}:
        catalog.update(change)
    else:
        entry.update(change)
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(catalog))
    with pytest.raises(CatalogError, match=message):
        load_catalog(str(path))
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(str(tmp_path / "missing.json"))


def test_shipped_catalog_lists_the_authors_72_modules():
    from export.importer import AUTHORS_LOSSES, authors_handle

    catalog = load_catalog()
    entries = catalog["entries"]
    assert catalog["catalog_version"] == 1 and len(entries) == 72
    pairs = {(e["objective"], e["seed"]) for e in entries}
    assert pairs == {(loss, s) for loss in AUTHORS_LOSSES for s in range(8)}
    for e in entries:
        assert e["source"] == "authors" and e["arch"] == "resnet50"
        assert e["handle"] == authors_handle(e["objective"], e["seed"])
        assert e["handle"].startswith("gs://gresearch/loss_functions_transfer/")
        assert e["sha256"] is None and e["needs_import"] is True
    softmax = find_entry("authors_resnet50_softmax_seed3", catalog)
    assert softmax["accuracy"] == pytest.approx(0.770)
