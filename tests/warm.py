"""A warm Python for the tests' command-line runs: TensorFlow imported once,
each command run in a fork of that process.

Starting a Python that imports TensorFlow costs about 5 s of CPU on the
2-core CI machine, and the suite runs well over a hundred commands. The
server below (``python tests/warm.py``) imports TensorFlow and the heavy
libraries once, runs no TensorFlow op (so no runtime thread exists to be
lost in a fork), then serves one request per line on stdin: it forks a
child that runs the command exactly as its console script would
(``<module>.run()`` with ``sys.argv`` set, or ``python -c CODE``), in the
request's working directory and with exactly the request's environment,
with file descriptors 0, 1 and 2 pointed at /dev/null and two temporary
files. The child leads its own process group, so a timeout kills
everything it started. The reply is one JSON line {status, stdout, stderr,
timed_out}.

The client `WarmPython.run` returns a `subprocess.CompletedProcess`, so a
test reads the same whether its command ran here or in a fresh process.
The console scripts themselves stay covered by real fresh processes in
tests/test_cli.py (--help of every entry point) and by the commands that
must be separate processes (a killed run, the sandboxed child).
"""

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child(request, out, err):
    """Runs `request` in this (forked) process; never returns."""
    code = 1
    try:
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # TMPDIR may differ from the server's
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        if "code" in request:
            sys.argv = ["-c", *request["args"]]
            scope = {"__name__": "__main__"}
            exec(compile(request["code"], "<string>", "exec"), scope)
        else:
            import importlib

            sys.argv = [request["module"], *request["args"]]
            importlib.import_module(request["module"]).run()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
        if not isinstance(e.code, (int, type(None))):
            sys.stderr.write(f"{e.code}\n")
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve_one(request):
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _child(request, out, err)
    # A pidfd becomes readable when the child exits: wait for that or the
    # timeout, then reap it (killing its whole group first on a timeout).
    with os.fdopen(os.pidfd_open(pid), "rb", buffering=0) as exited:
        ready, _, _ = select.select([exited], [], [], request.get("timeout", 600))
    timed_out = not ready
    if timed_out:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    out.seek(0)
    err.seek(0)
    return {
        "status": os.waitstatus_to_exitcode(status),
        "stdout": out.read().decode("utf-8", "replace"),
        "stderr": err.read().decode("utf-8", "replace"),
        "timed_out": timed_out,
    }


def serve():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, REPO)
    from zoo.cli import quiet_tensorflow

    quiet_tensorflow()
    # The libraries most commands import; none of them runs an op here.
    import keras  # noqa: F401
    import numpy  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import tensorflow_datasets  # noqa: F401

    channel = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints stay out
    channel.write("ready\n")
    channel.flush()
    for line in sys.stdin:
        channel.write(json.dumps(_serve_one(json.loads(line))) + "\n")
        channel.flush()


class WarmPython:
    """Client of one warm server (start it once per test process)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO},
        )
        ready = self._process.stdout.readline()
        if ready != "ready\n":
            raise RuntimeError(f"the warm Python did not start: {ready!r}")

    def run(self, module, *args, cwd=None, env=None, timeout=600):
        """Runs `module`'s console entry point `run()` with `args`, like
        ``python -m module args...``; returns a CompletedProcess."""
        return self._request({"module": module}, args, cwd, env, timeout)

    def run_code(self, code, *args, cwd=None, env=None, timeout=600):
        """Runs ``python -c code args...``; returns a CompletedProcess."""
        return self._request({"code": code}, args, cwd, env, timeout)

    def _request(self, what, args, cwd, env, timeout):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"} if env is None else env
        request = dict(
            what,
            args=[str(a) for a in args],
            cwd=str(cwd or REPO),
            env={k: str(v) for k, v in env.items()},
            timeout=timeout,
        )
        with self._lock:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the warm Python died")
        reply = json.loads(line)
        command = [what.get("module") or "-c", *request["args"]]
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired(
                command, timeout, reply["stdout"], reply["stderr"]
            )
        return subprocess.CompletedProcess(
            command, reply["status"], reply["stdout"], reply["stderr"]
        )

    def close(self):
        self._process.stdin.close()
        self._process.wait(timeout=60)


if __name__ == "__main__":
    serve()
