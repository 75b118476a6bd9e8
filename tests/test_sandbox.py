"""The sandbox (benchmark.modules.sandbox) with both tools, bubblewrap and unshare,
for real: a write outside the run's folders fails and leaves no file
(tests/test_attacks.py shows reads outside the view fail too), a
server on this machine's 127.0.0.1 cannot be reached, the memory, file-size
and wall-time limits stop the child with one line, and zoo-benchmark
--sandbox=require runs a real module in it and records the tool in each row.

Both tools must work under CI (.ci/run installs bubblewrap); elsewhere a tool
that cannot build its sandbox here is skipped with the reason."""

import http.server
import os
import subprocess
import sys
import threading

import pytest
import tensorflow as tf

from benchmark.modules import sandbox
from benchmark.results import leaderboard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(params=sandbox.TOOLS)
def tool(request):
    name = request.param
    if not sandbox.works(name):
        if os.environ.get("CI"):
            pytest.fail(f"{name} cannot build a sandbox on this CI machine")
        pytest.skip(f"{name} cannot build a sandbox here")
    return name


def _limits(**kwargs):
    return sandbox.Limits.create(**{"memory_gb": 4, "time_s": 60, **kwargs})


def _run(tool, code, writable=(), **limits):
    """Runs Python `code` in the sandbox; returns (exit status, stderr)."""
    err_path = os.path.join(writable[0], "stderr.txt") if writable else None
    stderr = open(err_path, "wb") if err_path else subprocess.DEVNULL
    view = sandbox.system_view(cwd=REPO).plus(writable=list(writable))
    try:
        status = sandbox.run(
            tool,
            [sys.executable, "-c", code],
            view,
            _limits(**limits),
            stderr=stderr,
        )
    finally:
        if err_path:
            stderr.close()
    text = open(err_path).read() if err_path else ""
    return status, text


def test_writes_outside_the_run_folder_fail_and_leave_nothing(tool, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "sentinel_written_outside"
    home_file = os.path.join(REPO, "sentinel_from_the_sandbox")
    code = (
        "import errno\n"
        f"open({str(out / 'inside')!r}, 'w').write('ok')\n"
        f"for path in ({str(outside)!r}, {home_file!r}, '/etc/zoo_sentinel'):\n"
        "    try:\n"
        "        open(path, 'w').write('escaped')\n"
        "    except OSError as e:\n"
        "        assert e.errno in (errno.EROFS, errno.EACCES, errno.ENOENT), e\n"
        "    else:\n"
        "        raise SystemExit('wrote ' + path)\n"
    )
    status, err = _run(tool, code, [str(out)])
    assert status == 0, err
    assert (out / "inside").read_text() == "ok"
    assert not outside.exists() and not os.path.exists(home_file)
    assert not os.path.exists("/etc/zoo_sentinel")


def test_the_hosts_loopback_server_is_unreachable(tool, tmp_path):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/from-the-sandbox"
    out = tmp_path / "out"
    out.mkdir()
    try:
        # The server answers from outside the sandbox...
        import urllib.request

        urllib.request.urlopen(url.replace("sandbox", "host"), timeout=5).read()
        code = (
            "import urllib.request\n"
            "try:\n"
            f"    urllib.request.urlopen({url!r}, timeout=5)\n"
            "except OSError:\n"
            "    raise SystemExit(0)\n"
            "raise SystemExit('reached the host')\n"
        )
        status, err = _run(tool, code, [str(out)])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert status == 0, err
    assert hits == ["/from-the-host"]  # ... and never saw the sandboxed request.


def test_the_memory_limit_stops_the_child(tool, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    status, err = _run(tool, "x = bytearray(3 << 30)", [str(out)], memory_gb=1)
    assert status != 0 and "MemoryError" in err
    line = sandbox.describe_exit(status, _limits(memory_gb=1))
    assert "1.0 GiB limit" in line and "\n" not in line


def test_the_file_size_limit_stops_a_growing_file(tool, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    code = f"open({str(out / 'big')!r}, 'wb').write(bytes(4 << 20))"
    status, err = _run(tool, code, [str(out)], file_gb=1 / 1024)
    assert status != 0 and "File too large" in err
    assert (out / "big").stat().st_size <= 1 << 20


def test_the_wall_time_limit_stops_the_child(tool, tmp_path):
    with pytest.raises(sandbox.SandboxError, match="wall-time limit of 1 s"):
        _run(tool, "import time; time.sleep(60)", time_s=1)


def test_bad_limits_and_modes_are_one_line():
    with pytest.raises(sandbox.SandboxError, match="--sandbox_memory_gb must be"):
        sandbox.Limits.create(memory_gb=-1)
    with pytest.raises(sandbox.SandboxError, match="--sandbox must be one of"):
        sandbox.choose("maybe")
    assert sandbox.choose("off") is None


class Features(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([48, 16], seed=[1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        x = tf.image.resize(images, [4, 4])
        return tf.nn.relu(tf.matmul(tf.reshape(x, [-1, 48]), self.w))


@pytest.mark.parametrize("mode", ["require", "off"])
def test_zoo_benchmark_records_where_it_ran(mode, tmp_path):
    module = str(tmp_path / "module")
    tf.saved_model.save(Features(), module)
    board = tmp_path / "board.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.cli.benchmark",
            f"--module={module}",
            "--evaluations=knn",
            "--image_size=32",
            f"--leaderboard={board}",
            f"--cache_dir={tmp_path / 'cache'}",
            f"--sandbox={mode}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    rows = leaderboard.read_rows(str(board))
    assert [r["evaluation"] for r in rows] == ["knn"]
    assert rows[0]["handle"] == module
    expected = sandbox.available_tool() if mode == "require" else "off"
    assert rows[0]["sandbox"] == expected
    assert "1 rows appended" in result.stdout
    assert not [n for n in os.listdir(tmp_path) if n.startswith("zoo-benchmark")]


def test_a_full_disk_is_one_line_and_leaves_the_leaderboard_whole(tmp_path):
    """A real full disk: the leaderboard's folder is a 64 KiB tmpfs (in a
    private mount namespace made by unshare) already holding a leaderboard
    and a filler file; the benchmark's rows cannot be written. One line,
    exit 2, and the old leaderboard is intact with no temporary file left."""
    if not sandbox.works("unshare"):
        if os.environ.get("CI"):
            pytest.fail("unshare cannot build a mount namespace on this CI machine")
        pytest.skip("unshare cannot build a mount namespace here")
    module = str(tmp_path / "module")
    tf.saved_model.save(Features(), module)
    full = tmp_path / "full"
    full.mkdir()
    header = ",".join(leaderboard.COLUMNS)
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {full} && "
        f"printf '%s\\n' '{header}' > {full}/board.csv && "
        f"(head -c 1000000 /dev/zero > {full}/filler 2>/dev/null; true) && "
        f"{sys.executable} -m benchmark.cli.benchmark --module={module} "
        f"--evaluations=knn --image_size=32 --leaderboard={full}/board.csv "
        "--sandbox=off "
        f"--cache_dir={tmp_path / 'cache'}; code=$?; "
        f"cat {full}/board.csv > {tmp_path}/board_after.csv; ls -a {full} > "
        f"{tmp_path}/listing.txt; exit $code"
    )
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on the device" in lines[0], lines
    assert (tmp_path / "board_after.csv").read_text() == header + "\n"
    listing = (tmp_path / "listing.txt").read_text().split()
    # board.csv.lock is the persistent flock file every append uses.
    assert sorted(listing) == [".", "..", "board.csv", "board.csv.lock", "filler"]
