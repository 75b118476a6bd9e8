"""Bounded, timed and verified module fetches (export.fetch) against real
HTTP servers on 127.0.0.1 and real archives: bombs, sparse, duplicate, deep
and non-module archives, endless and slow servers, an announced size over the
limit, and the cache bypasses (a folder tensorflow_hub filled unverified, a
cached module changed after its verification). Each refusal is one line and
leaves the cache clean and usable."""

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
import time
import urllib.parse

import numpy as np
import pytest
import tensorflow as tf

from benchmark.modules import loading as modules
from export import fetch
from export.archive import ArchiveError, check_archive, pack_module, safe_extract
from export.catalog import pull
from zoo.provenance import sha256_tree

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


class Server:
    """A real HTTP server on 127.0.0.1: `routes` maps a path to bytes, or to
    "endless" (bytes forever, no Content-Length), "trickle" (one byte per
    0.05 s) or ("announce", n) (claims n bytes, sends a few)."""

    def __init__(self, routes):
        self.routes = dict(routes)
        self.requests = []
        self.stopped = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                route = server.routes.get(urllib.parse.urlsplit(self.path).path)
                if route is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                try:
                    if route == "endless":
                        self.end_headers()
                        block = b"\0" * 65536
                        while not server.stopped.is_set():
                            self.wfile.write(block)
                    elif route == "trickle":
                        self.send_header("Content-Length", "100000")
                        self.end_headers()
                        while not server.stopped.wait(0.05):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    elif isinstance(route, tuple):
                        self.send_header("Content-Length", str(route[1]))
                        self.end_headers()
                        self.wfile.write(b"abc")
                    else:
                        self.send_header("Content-Length", str(len(route)))
                        self.end_headers()
                        self.wfile.write(route)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self):
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class Tiny(tf.Module):
    def __init__(self, scale):
        super().__init__()
        self.w = tf.Variable(tf.fill([3, 4], float(scale)))

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def __call__(self, images):
        return tf.matmul(tf.reduce_mean(images, axis=[1, 2]), self.w)


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Two real module archives (scale 1 and 2) and their bytes and hashes."""
    root = tmp_path_factory.mktemp("fetch_modules")
    out = {}
    for scale in (1, 2):
        module_dir = root / f"tiny{scale}"
        tf.saved_model.save(Tiny(scale), str(module_dir))
        archive = root / f"tiny{scale}.tar.gz"
        sha = pack_module(str(module_dir), str(archive))
        out[scale] = dict(
            dir=str(module_dir),
            archive=str(archive),
            sha=sha,
            body=archive.read_bytes(),
        )
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    path = tmp_path / "hub_cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(path))
    return path


def _clean(cache):
    """Returns what a refused fetch left in the cache (expected: nothing)."""
    if not cache.exists():
        return []
    return sorted(os.listdir(cache))


def _tar_gz(members):
    """Returns the bytes of a .tar.gz of (name, bytes) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _bomb(path, zeros):
    """Writes a gzip bomb: a tar whose one big member is `zeros` zero bytes,
    streamed so the bomb is never held in memory or on disk."""
    with gzip.open(path, "wb", compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as tar:
            pb = tarfile.TarInfo("saved_model.pb")
            pb.size = 2
            tar.addfile(pb, io.BytesIO(b"pb"))
            big = tarfile.TarInfo("variables/variables.data-00000-of-00001")
            big.size = zeros

            class Zeros(io.RawIOBase):
                def __init__(self):
                    self.left = zeros

                def readinto(self, b):
                    n = min(len(b), self.left)
                    b[:n] = bytes(n)
                    self.left -= n
                    return n

            tar.addfile(big, Zeros())


def test_a_gzip_bomb_is_refused_before_it_expands(tmp_path, cache, monkeypatch):
    bomb = tmp_path / "bomb.tar.gz"
    _bomb(bomb, 256 << 20)  # 256 MiB of zeros in about 250 KB.
    assert bomb.stat().st_size < 1 << 20
    monkeypatch.setenv("ZOO_MAX_MODULE_MB", "16")
    start = time.perf_counter()
    with pytest.raises(ArchiveError, match="expands to more than 16,777,216 bytes"):
        modules.resolve_handle(str(bomb))
    assert time.perf_counter() - start < 30  # refused at the header, not after
    assert _clean(cache) == []


def test_a_sparse_member_is_refused(tmp_path, cache):
    src = tmp_path / "src"
    (src / "variables").mkdir(parents=True)
    (src / "saved_model.pb").write_bytes(b"pb")
    with open(src / "variables" / "hole", "wb") as f:
        f.truncate(3 << 30)  # 3 GiB of hole, no blocks on disk
    archive = tmp_path / "sparse.tar.gz"
    subprocess.run(
        ["tar", "--sparse", "-czf", str(archive), "-C", str(src), "."], check=True
    )
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(ArchiveError, match="sparse file"):
        modules.resolve_handle(str(archive))
    assert _clean(cache) == []


@pytest.mark.parametrize(
    "members, message",
    [
        (
            [("saved_model.pb", b"a"), ("variables/x", b"1"), ("variables/x", b"2")],
            "appears twice",
        ),
        ([("saved_model.pb", b"a"), ("./saved_model.pb", b"b")], "appears twice"),
        ([("saved_model.pb", b"a"), ("/".join(["d"] * 40) + "/f", b"1")], "deeper"),
        ([("README.md", b"hello"), ("data.bin", b"1")], "no saved_model.pb"),
        ([("sub/saved_model.pb", b"a")], "no saved_model.pb at its root"),
    ],
    ids=["duplicate", "duplicate_dot", "deep", "not_a_module", "nested_module"],
)
def test_malformed_archives_are_refused_in_one_line(members, message, tmp_path, cache):
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(_tar_gz(members))
    with pytest.raises(ArchiveError, match=message) as error:
        modules.resolve_handle(str(archive))
    assert "\n" not in str(error.value)
    assert _clean(cache) == []
    with pytest.raises(ArchiveError, match=message):
        safe_extract(str(archive), str(tmp_path / "out"), require_module=True)
    assert not (tmp_path / "out").exists()


def test_check_archive_stops_at_the_first_member_over_the_limit(tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    _bomb(archive, 64 << 20)
    with pytest.raises(ArchiveError, match="expands to more than 1,048,576"):
        check_archive(str(archive), max_bytes=1 << 20)
    assert len(check_archive(str(archive), max_bytes=128 << 20)) == 2


@pytest.fixture
def server(archives, tmp_path):
    bomb = tmp_path / "served_bomb.tar.gz"
    _bomb(bomb, 64 << 20)
    srv = Server(
        {
            "/tiny.tar.gz": archives[1]["body"],
            "/other.tar.gz": archives[2]["body"],
            "/bomb.tar.gz": bomb.read_bytes(),
            "/notmodule.tar.gz": _tar_gz([("README.md", b"not a module")]),
            "/endless.tar.gz": "endless",
            "/trickle.tar.gz": "trickle",
            "/huge.tar.gz": ("announce", 50 << 30),
            "/hub/tiny/1": archives[1]["body"],
        }
    )
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    "path, env, message",
    [
        ("/endless.tar.gz", {"ZOO_MAX_MODULE_MB": "4"}, "sent more than 4,194,304"),
        (
            "/trickle.tar.gz",
            {"ZOO_DOWNLOAD_DEADLINE_S": "1"},
            "did not finish within 1 s",
        ),
        ("/huge.tar.gz", {}, "is 53,687,091,200 bytes, over the"),
        ("/bomb.tar.gz", {"ZOO_MAX_MODULE_MB": "8"}, "expands to more than 8,388,608"),
        ("/notmodule.tar.gz", {}, "no saved_model.pb at its root"),
        ("/missing.tar.gz", {}, "HTTP 404"),
    ],
    ids=["endless", "slow", "announced_too_big", "bomb", "not_a_module", "404"],
)
def test_module_urls_are_bounded_timed_and_refused_in_one_line(
    path, env, message, server, cache, monkeypatch
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    start = time.perf_counter()
    with pytest.raises(modules.ModuleError, match=message) as error:
        modules.resolve_handle(server.url(path))
    assert time.perf_counter() - start < 30
    assert "\n" not in str(error.value)
    assert _clean(cache) == []  # no .tmp, no .lock, no partial module
    # The cache stays usable: a good module fetches into it afterwards.
    good = modules.resolve_handle(server.url("/tiny.tar.gz"))
    assert _clean(cache) == sorted(
        [os.path.basename(good), os.path.basename(good) + fetch.RECORD_SUFFIX]
    )


def test_a_url_module_is_fetched_once_and_verified_on_every_use(
    server, archives, cache
):
    url = server.url("/tiny.tar.gz")
    path = modules.resolve_handle(url)
    assert sha256_tree(path) == sha256_tree(archives[1]["dir"])
    record = json.loads(open(path + fetch.RECORD_SUFFIX).read())
    assert record["archive_sha256"] == archives[1]["sha"] and not record["pinned"]
    assert modules.resolve_handle(url) == path
    assert len(server.requests) == 1  # the second use did not download
    # A module changed after its verification is fetched again.
    var = os.path.join(path, "variables", "variables.data-00000-of-00001")
    with open(var, "r+b") as f:
        f.write(b"\xff\xff\xff\xff")
    assert modules.resolve_handle(url) == path
    assert len(server.requests) == 2
    assert sha256_tree(path) == sha256_tree(archives[1]["dir"])
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(loaded(tf.ones([1, 8, 8, 3])), np.ones([1, 4]) * 3)


def test_a_hub_handle_gets_the_compressed_format_query(server, cache):
    modules.resolve_handle(server.url("/hub/tiny/1"))
    assert server.requests == ["/hub/tiny/1?tf-hub-format=compressed"]


def test_a_kaggle_handle_downloads_through_the_compressed_protocol(
    server, archives, cache, monkeypatch
):
    """kaggle:OWNER/MODEL/tensorFlow2/VARIATION/VERSION resolves to
    <Kaggle>/models/... with tensorflow_hub's compressed-format query, here
    against a local server standing in for kaggle.com ($ZOO_KAGGLE_URL)."""
    path = "/models/zoo-team/loss-transfer-zoo/tensorFlow2/tiny/1"
    server.routes[path] = archives[2]["body"]
    monkeypatch.setenv(fetch.KAGGLE_URL_ENV, server.url(""))
    module = modules.resolve_handle(
        "kaggle:zoo-team/loss-transfer-zoo/tensorFlow2/tiny/1"
    )
    assert server.requests == [path + "?tf-hub-format=compressed"]
    assert sha256_tree(module) == sha256_tree(archives[2]["dir"])
    loaded = tf.saved_model.load(module)
    np.testing.assert_allclose(loaded(tf.ones([1, 8, 8, 3])), np.ones([1, 4]) * 6)
    long_form = (
        "https://www.kaggle.com/models/google/bit/frameworks/TensorFlow2/"
        "variations/s-r50x1/versions/1"
    )
    assert fetch.is_kaggle_handle(long_form)
    assert fetch.kaggle_url(long_form) == (
        "https://www.kaggle.com/models/google/bit/TensorFlow2/s-r50x1/1"
    )
    for bad, message in (
        ("kaggle:zoo-team/loss-transfer-zoo", "is not a Kaggle Models handle"),
        ("kaggle:o/m/tensorFlow2/v/latest", "is not a Kaggle Models handle"),
        ("kaggle:o/m/PyTorch/v/1", "is a PyTorch instance"),
    ):
        with pytest.raises(modules.ModuleError, match=message):
            modules.resolve_handle(bad)
    assert len(server.requests) == 1


def _catalog(tmp_path, server, archives):
    entry = {
        "name": "tiny",
        "source": "zoo",
        "arch": "resnet50",
        "objective": "softmax",
        "seed": 0,
        "handle": server.url("/tiny.tar.gz"),
        "sha256": archives[1]["sha"],
        "size": len(archives[1]["body"]),
        "accuracy": 0.5,
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"catalog_version": 1, "entries": [entry]}))
    return str(path), entry


def test_a_folder_tensorflow_hub_filled_is_not_returned_as_verified(
    server, archives, cache, tmp_path, monkeypatch
):
    """The bypass: the pinned handle's cache folder filled without
    verification (as tensorflow_hub's own resolver would, here with another
    module's files) is fetched again and verified, never returned as is."""
    catalog, entry = _catalog(tmp_path, server, archives)
    monkeypatch.setenv("ZOO_CATALOG", catalog)
    squatted = cache / fetch.cache_key(entry["handle"])
    safe_extract(archives[2]["archive"], str(squatted))
    lines = []
    path = pull("tiny", cache_dir=str(cache), report=lines.append, catalog=catalog)
    assert path == str(squatted)
    assert sha256_tree(path) == sha256_tree(archives[1]["dir"])
    assert any("not written by a verified fetch" in line for line in lines)
    # --module=URL of a catalog handle goes through the pinned pull.
    body = archives[1]["body"]
    server.routes["/tiny.tar.gz"] = body[:-1] + bytes([body[-1] ^ 1])  # turns bad
    assert modules.resolve_handle(entry["handle"]) == path  # verified cache hit
    os.remove(path + fetch.RECORD_SUFFIX)  # unverifiable now: refetched, refused
    with pytest.raises(modules.ModuleError, match="sha256 mismatch"):
        modules.resolve_handle(entry["handle"])
    assert sorted(os.listdir(cache)) == sorted(
        [os.path.basename(path), os.path.basename(path) + ".descriptor.txt"]
    )


def test_zoo_pull_limits_are_flags_and_bad_values_are_one_line(
    server, archives, tmp_path, warm
):
    catalog, _ = _catalog(tmp_path, server, archives)
    cache = tmp_path / "cli_cache"
    base = ["export.pull_main", f"--catalog={catalog}"]
    ok = warm.run(*base, f"--cache_dir={cache}", "--max_module_mb=1", "tiny", env=ENV)
    assert ok.returncode == 0, ok.stderr
    assert os.path.isfile(os.path.join(ok.stdout.strip(), "saved_model.pb"))
    bad = warm.run(*base, "--download_deadline_s=-1", "tiny", env=ENV)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --download_deadline_s must be positive, got -1.0"
    ]
    assert hashlib.sha256(archives[1]["body"]).hexdigest() == archives[1]["sha"]
