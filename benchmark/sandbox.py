"""Defence in depth: run a benchmark of an untrusted module in a child
process inside a sandbox built from an existing tool.

The op allowlist (benchmark.safety) already refuses, before anything runs,
every module op that could touch files or the network. The sandbox is the
second wall, for what that scan might miss (a kernel bug, an op whose
behaviour changes between TensorFlow versions):

* no network: a new, empty network namespace (loopback down);
* the whole file system read-only (readable, so modules and data anywhere
  work), except the run's own output folder (also its TMPDIR) and the
  feature cache;
* limits: address space (`--sandbox_memory_gb`), size of any file written
  (`--sandbox_file_gb`), wall time (`--sandbox_time_s`).

Tools, in order: bubblewrap (`bwrap`, Debian package bubblewrap: a read-only
bind of /, a private /dev and /proc, new network, PID and IPC
namespaces, killed with its parent), else `unshare` from util-linux with user,
mount, network and PID namespaces, where every mount is remounted read-only
before the benchmark starts. `TOOLS` lists them; `available_tool()` probes
each once (both need unprivileged user namespaces, or root).

What the child may not do, it cannot: a write outside its folders fails with
EROFS, a connection with ENETUNREACH; a limit hit ends it and the parent
prints one line naming the limit.
"""

import dataclasses
import functools
import os
import resource
import shutil
import signal
import subprocess

TOOLS = ("bwrap", "unshare")
MODES = ("auto", "require", "off")
ENV_TOOL = "ZOO_SANDBOX"  # set in the child: the tool it runs under
GIB = 1 << 30
DEFAULT_FILE_GB = 64
DEFAULT_TIME_S = 24 * 3600
_PROBE_TIMEOUT_S = 20


class SandboxError(ValueError):
    """The sandbox cannot start, or the sandboxed run hit a limit or crashed."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the sandboxed child may use."""

    memory_bytes: int
    file_bytes: int = DEFAULT_FILE_GB * GIB
    time_s: float = DEFAULT_TIME_S

    @classmethod
    def create(cls, memory_gb=None, file_gb=None, time_s=None):
        """Returns limits from the CLI's values (None: the default), checked:
        memory defaults to 80% of this machine's RAM."""
        for flag, value in (
            ("--sandbox_memory_gb", memory_gb),
            ("--sandbox_file_gb", file_gb),
            ("--sandbox_time_s", time_s),
        ):
            if value is not None and not 0 < value < float("inf"):
                raise SandboxError(f"{flag} must be a positive number, got {value}")
        memory = int(memory_gb * GIB) if memory_gb else int(0.8 * physical_memory())
        return cls(
            memory_bytes=memory,
            file_bytes=int((file_gb or DEFAULT_FILE_GB) * GIB),
            time_s=float(time_s or DEFAULT_TIME_S),
        )


def physical_memory():
    """Returns this machine's RAM in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _bwrap(argv, writable):
    cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in writable:
        cmd += ["--bind", path, path]
    cmd += ["--unshare-net", "--unshare-pid", "--unshare-ipc"]
    cmd += ["--die-with-parent", "--new-session", "--"]
    return cmd + list(argv)


# Inside the new mount namespace: keep the writable folders as their own
# mounts, make every mount read-only, then the writable ones writable again.
_UNSHARE_SCRIPT = """
set -e
for w in "$@"; do [ "$w" = -- ] && break; mount --bind "$w" "$w"; done
for m in $(awk '{print $2}' /proc/self/mounts); do
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
while [ "$1" != -- ]; do mount -o remount,bind,rw "$1" "$1"; shift; done
shift
exec "$@"
"""


def _unshare(argv, writable):
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid"]
    cmd += ["--ipc", "--fork", "--kill-child", "--", "sh", "-c", _UNSHARE_SCRIPT]
    return cmd + ["sh", *writable, "--", *argv]


_BUILDERS = {"bwrap": _bwrap, "unshare": _unshare}


def command(tool, argv, writable):
    """Returns `argv` wrapped to run under `tool` with only `writable`
    (absolute folders that exist) writable."""
    return _BUILDERS[tool](argv, [os.path.realpath(p) for p in writable])


@functools.lru_cache(maxsize=None)
def works(tool):
    """Returns whether `tool` is installed and can build its sandbox here
    (probed once: it must run `true` inside one)."""
    if not shutil.which(tool):
        return False
    try:
        probe = subprocess.run(
            command(tool, ["true"], []),
            capture_output=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def available_tool(preferred=None):
    """Returns the first tool of TOOLS (or `preferred`) that works, or None."""
    for tool in (preferred,) if preferred else TOOLS:
        if works(tool):
            return tool
    return None


def choose(mode):
    """Returns the tool to run under for `--sandbox=mode`, or None for no
    sandbox; raises SandboxError when `require` finds none."""
    if mode not in MODES:
        raise SandboxError(f"--sandbox must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "off" or os.environ.get(ENV_TOOL):
        return None
    tool = available_tool()
    if tool is None and mode == "require":
        raise SandboxError(
            "--sandbox=require but no sandbox can start here: install bubblewrap "
            "(apt install bubblewrap) or enable unprivileged user namespaces, "
            "or pass --sandbox=off for a module you trust"
        )
    return tool


def _apply_limits(limits):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes,) * 2)
        os.setsid()

    return preexec


def run(tool, argv, writable, limits, env=None, stderr=None):
    """Runs `argv` under `tool` within `limits` and returns its exit status;
    raises SandboxError (one line naming the limit) when the child was killed
    by a signal or ran out of time. stdout is inherited (progress streams)."""
    env = dict(os.environ if env is None else env, **{ENV_TOOL: tool})
    proc = subprocess.Popen(
        command(tool, argv, writable),
        env=env,
        stderr=stderr,
        preexec_fn=_apply_limits(limits),
    )
    try:
        code = proc.wait(timeout=limits.time_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise SandboxError(
            f"the sandboxed run passed its wall-time limit of {limits.time_s:g} s "
            "and was stopped; raise --sandbox_time_s if it needs longer"
        ) from None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return code


def describe_exit(code, limits):
    """Returns one line for a child exit status that is neither 0 nor a
    user error (2), naming the limit it most likely hit."""
    signum = -code if code < 0 else code - 128 if code > 128 else None
    if signum == signal.SIGXFSZ:
        return (
            f"the sandboxed run wrote a file over the {limits.file_bytes / GIB:g} GiB "
            "limit and was stopped; raise --sandbox_file_gb"
        )
    if signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
        name = signal.Signals(signum).name
        return (
            f"the sandboxed run died ({name}), most likely at its memory limit of "
            f"{limits.memory_bytes / GIB:.1f} GiB; raise --sandbox_memory_gb or "
            "lower --batch_size"
        )
    if signum:
        return f"the sandboxed run was stopped by signal {signum}"
    return (
        f"the sandboxed run failed with exit status {code} (out of memory under the "
        f"{limits.memory_bytes / GIB:.1f} GiB limit, or a crash); raise "
        "--sandbox_memory_gb or rerun with --sandbox=off to see more"
    )
