"""The attack suite, round 2 (tests/attacks.py builds the modules without the
project's export code): each bypass found against the scan and the sandbox
is refused or contained, a sentinel proves nothing was read, written, moved
or deleted, and an oracle shows each refused attack is real."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from benchmark.features.extract import FeatureCache, entry_key
from benchmark.features.feature_set import FeatureSet
from benchmark.modules import sandbox
from benchmark.modules.loading import ModuleError, load_module
from export import safety
from export.archive import ArchiveError, safe_extract
from tests import attacks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
KINDS = ("read", "write", "write_v1", "move")


def _tools():
    tools = [t for t in sandbox.TOOLS if sandbox.works(t)]
    if not tools and os.environ.get("CI"):
        pytest.fail("no sandbox tool works on this CI machine")
    return tools


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    """A folder with a secret checkpoint (what an attacker wants to read or
    move) and one forged-saver module per attack kind."""
    root = tmp_path_factory.mktemp("arena")
    secret = attacks.write_secret_checkpoint(str(root / "secret" / "ckpt"))
    targets = {
        "read": secret,
        "write": str(root / "dot_bashrc"),
        "write_v1": str(root / "v1_file"),
        "move": secret,
    }
    modules = {
        kind: attacks.forged_saver_module(root / f"forged_{kind}", kind, targets[kind])
        for kind in KINDS
    }
    return root, secret, targets, modules


def _untouched(root, secret):
    """Asserts the arena holds only the secret, unmoved, and the modules."""
    assert sorted(os.listdir(os.path.dirname(secret))) == [
        "ckpt.data-00000-of-00001",
        "ckpt.index",
    ]
    assert not [p for p in os.listdir(root) if not p.startswith(("forged_", "secret"))]


@pytest.mark.parametrize("kind", KINDS)
def test_a_forged_saver_is_refused_before_anything_runs(arena, kind):
    root, secret, _, modules = arena
    reasons = [f.reason for f in safety.unsafe_ops(modules[kind])]
    assert any(safety.FORGED in r for r in reasons), reasons
    with pytest.raises(ModuleError, match="refusing .*not the one TensorFlow writes"):
        load_module(modules[kind])
    _untouched(root, secret)


def test_the_forged_saver_attacks_are_real_without_the_scan(arena, tmp_path):
    """The oracle: the same modules, loaded by TensorFlow alone, read the
    secret into their features, write files of any name and move another
    checkpoint away (the arena is put back afterwards)."""
    root, secret, targets, modules = arena
    code = (
        "import sys, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "print(m(tf.zeros([1, 8, 8, 3])).numpy().tolist())\n"
    )

    def call(kind):
        out = subprocess.run(
            [sys.executable, "-c", code, modules[kind]],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.splitlines()[-1])

    assert call("read") == attacks.SECRET  # the checkpoint's bytes, as features
    call("write")
    call("write_v1")
    assert os.path.exists(targets["write"] + ".index")
    assert os.path.exists(targets["write_v1"])
    call("move")
    assert os.path.exists(secret + "_moved.index")
    assert not os.path.exists(secret + ".index")
    # Put the arena back for the other tests of this module.
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name.startswith(("dot_bashrc", "v1_file")):
            os.remove(path)
    for name in os.listdir(os.path.dirname(secret)):
        os.remove(os.path.join(os.path.dirname(secret), name))
    attacks.write_secret_checkpoint(secret)


@pytest.mark.parametrize("mode", ["off", "require"])
def test_zoo_benchmark_refuses_the_forged_saver_and_caches_nothing(
    arena, mode, tmp_path
):
    if mode == "require":
        _tools() or pytest.skip("no sandbox tool works here")
    root, secret, _, modules = arena
    cache = tmp_path / "cache"
    board = tmp_path / "lb.csv"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.cli.benchmark",
            "--config=smoke",
            f"--module={modules['read']}",
            "--evaluations=knn",
            f"--leaderboard={board}",
            f"--cache_dir={cache}",
            f"--sandbox={mode}",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refusing"), lines
    assert not board.exists()
    assert not cache.exists() or not os.listdir(cache)
    _untouched(root, secret)


@pytest.mark.parametrize("tool", sandbox.TOOLS)
def test_inside_the_sandbox_nothing_outside_its_view_can_be_read(arena, tool, tmp_path):
    """The second wall, with the scan out of the way: TensorFlow loading the
    forged module inside the sandbox cannot restore the secret checkpoint,
    and no file outside the view (a sentinel here, the repository, home,
    another module's cache entry, /etc/shadow) can be opened."""
    if not sandbox.works(tool):
        if os.environ.get("CI"):
            pytest.fail(f"{tool} cannot build a sandbox on this CI machine")
        pytest.skip(f"{tool} cannot build a sandbox here")
    _, secret, _, modules = arena
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("private")
    other_entry = tmp_path / "cache" / "0123456789abcdef-00.npz"
    other_entry.parent.mkdir()
    other_entry.write_bytes(b"another module's features")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    view = sandbox.system_view(cwd=REPO).plus(
        read_only=[modules["read"]], writable=[str(out_dir)]
    )
    hidden = [
        str(sentinel),
        secret + ".index",
        os.path.join(REPO, "README.md"),
        os.path.join(REPO, "leaderboard.csv"),
        os.path.expanduser("~/.bashrc"),
        str(other_entry),
        "/etc/shadow",
    ]
    code = (
        "import json, sys\n"
        "seen = {}\n"
        "for path in json.loads(sys.argv[2]):\n"
        "    try:\n"
        "        open(path, 'rb').read(1); seen[path] = 'read'\n"
        "    except OSError as e:\n"
        "        seen[path] = e.strerror\n"
        "import tensorflow as tf\n"
        "try:\n"
        "    tf.saved_model.load(sys.argv[1])(tf.zeros([1, 8, 8, 3]))\n"
        "    seen['restore'] = 'read'\n"
        "except Exception as e:\n"
        "    seen['restore'] = type(e).__name__\n"
        f"open({str(out_dir / 'seen.json')!r}, 'w').write(json.dumps(seen))\n"
    )
    argv = [sys.executable, "-c", code, modules["read"], json.dumps(hidden)]
    limits = sandbox.Limits.create(memory_gb=8, time_s=300)
    env = dict(ENV, TMPDIR=str(out_dir))  # the sandbox's /tmp is read-only
    status = sandbox.run(tool, argv, view, limits, env=env)
    assert status == 0
    seen = json.loads((out_dir / "seen.json").read_text())
    assert seen.pop("restore") != "read"
    assert all(v != "read" for v in seen.values()), seen
    assert sentinel.read_text() == "private"


def test_the_parent_adopts_only_valid_entries_of_the_module_it_ran(tmp_path):
    features = FeatureSet(
        np.ones([4, 3], np.float32),
        np.arange(4, dtype=np.int64),
        np.array(list("abcd")),
    )
    child = FeatureCache(str(tmp_path / "child"), report=lambda line: None)
    mine, other = "a" * 64, "b" * 64
    for module in (mine, other):
        parts = {"module": module, "split": "train"}
        child.save(entry_key(parts), features, parts)
    # A forged entry: this module's name, another module's parts inside.
    forged = child.path(entry_key({"module": mine, "split": "test"}))
    os.link(child.path(entry_key({"module": other, "split": "train"})), forged)
    parent = FeatureCache(str(tmp_path / "parent"), report=lambda line: None)
    results = {
        os.path.basename(p): parent.adopt(p, mine)
        for p in sorted(os.listdir(child.directory))
        for p in [os.path.join(child.directory, p)]
    }
    assert sorted(results.values()) == [False, False, True]
    assert [os.path.basename(p) for p in parent.entries_of(mine)] == [
        name for name, ok in results.items() if ok
    ]
    assert parent.entries_of(other) == []


def test_a_deep_function_chain_is_one_line_not_a_recursion_error(tmp_path):
    path = attacks.deep_chain_module(tmp_path / "deep")
    with pytest.raises(ModuleError, match="more than 256 deep") as error:
        load_module(path)
    assert "\n" not in str(error.value)


def _benchmark(module, tmp_path, *flags):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.cli.benchmark",
            "--config=smoke",
            f"--module={module}",
            "--evaluations=knn",
            f"--leaderboard={tmp_path / 'lb.csv'}",
            f"--cache_dir={tmp_path / 'cache'}",
            "--sandbox=require",
            *flags,
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=600,
    )


@pytest.mark.slow  # Runs the sandboxed benchmark until its wall-time bound.
def test_an_endless_module_stops_at_the_configs_time_bound(tmp_path):
    _tools() or pytest.skip("no sandbox tool works here")
    path = attacks.infinite_loop_module(tmp_path / "loop")
    assert safety.unsafe_ops(path) == []  # allowed ops only: the bound must hold
    out = _benchmark(path, tmp_path, "--set=time_limit_s=20")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "wall-time limit of 20 s" in lines[0], lines
    assert not (tmp_path / "lb.csv").exists()
    cache = tmp_path / "cache"
    assert not cache.exists() or not os.listdir(cache)


@pytest.mark.slow  # A sandboxed benchmark run (TensorFlow's start-up twice).
def test_a_huge_allocation_is_refused_with_one_line(tmp_path):
    _tools() or pytest.skip("no sandbox tool works here")
    path = attacks.huge_allocation_module(tmp_path / "huge")
    out = _benchmark(path, tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "OOM when allocating" in lines[0], lines


def test_the_default_time_bounds_fit_the_config():
    from benchmark.configs.config import load_config

    assert load_config("smoke").time_limit(10**6) == 600  # minutes for smoke
    local = load_config("local")
    assert local.time_limit(0) == 600 and local.time_limit(1000) == 1600


def test_a_gzip_bomb_is_refused_and_leaves_nothing(tmp_path):
    bomb = attacks.gzip_bomb(tmp_path / "bomb.tar.gz")
    assert os.path.getsize(bomb) < 4 << 20  # a few MB that claim 2 GiB
    with pytest.raises(ArchiveError, match="decompression bomb"):
        safe_extract(bomb, str(tmp_path / "out" / "module"), max_bytes=8 << 30)
    out = tmp_path / "out"
    assert not out.exists() or os.listdir(out) == []  # no staging folder left


def test_a_valid_module_with_non_utf8_file_names_loads(tmp_path):
    module = tf.Module()
    module.__call__ = tf.function(
        lambda images: tf.reduce_mean(images, axis=[1, 2]),
        input_signature=[attacks.SPEC],
    )
    path = tmp_path / "module"
    tf.saved_model.save(module, str(path))
    assets = os.path.join(os.fsencode(path), b"assets")
    os.makedirs(assets, exist_ok=True)
    with open(os.path.join(assets, b"caf\xe9 \xff.txt"), "wb") as f:
        f.write(b"a note in Latin-1")
    loaded = load_module(str(path))
    assert loaded.feature_dim == 3 and len(loaded.sha256) == 64
    archive = tmp_path / "module.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", str(path), "."], check=True)
    assert load_module(str(archive)).sha256 == loaded.sha256


def test_zoo_pull_scans_before_caching(tmp_path):
    """A pinned catalog entry whose archive holds a forged-saver module is
    refused by zoo-pull, and the cache holds nothing usable afterwards."""
    import hashlib

    from tests.test_catalog import ModuleServer

    module = attacks.forged_saver_module(
        tmp_path / "evil", "write", str(tmp_path / "sentinel")
    )
    archive = tmp_path / "evil.tar.gz"
    subprocess.run(["tar", "czf", str(archive), "-C", module, "."], check=True)
    body = archive.read_bytes()
    server = ModuleServer({"/evil.tar.gz": body})
    entry = {
        "name": "evil",
        "source": "zoo",
        "arch": "resnet50",
        "objective": "softmax",
        "seed": 0,
        "handle": server.url("/evil.tar.gz"),
        "sha256": hashlib.sha256(body).hexdigest(),
        "size": len(body),
        "accuracy": 0.5,
    }
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"catalog_version": 1, "entries": [entry]}))
    cache = tmp_path / "hub_cache"
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "export.pull_main",
                f"--catalog={catalog}",
                f"--cache_dir={cache}",
                "evil",
            ],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=300,
        )
    finally:
        server.stop()
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert "refusing" in lines[-1] and "nothing was cached" in lines[-1], lines
    assert [p for p in os.listdir(cache) if not p.startswith(".")] == []
    assert not os.path.exists(tmp_path / "sentinel.index")
