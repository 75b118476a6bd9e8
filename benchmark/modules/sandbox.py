"""Defence in depth: run a benchmark of an untrusted module in a child
process inside a sandbox built from an existing tool.

The op allowlist (export.safety) already refuses, before anything runs,
every module op that could touch files or the network. The sandbox is the
second wall, for what that scan might miss (a kernel bug, an op whose
behaviour changes between TensorFlow versions):

* no network: a new, empty network namespace (loopback down);
* a file system of its own (`View`): an empty root holding, read-only, only
  what the run needs: the system's programs and libraries, the Python
  installation and the project's packages (`system_view`), the module
  folder, the data it is given and this module's own feature-cache
  entries; writable, only the run's own folder (its TMPDIR, HOME, rows and
  new cache entries); /tmp is empty and read-only. No home folder, no repository, no
  other module's cache entries, no /etc beyond a few system files, no other
  user's files: what is not in the view does not exist there. The parent adopts the new
  cache entries after checking each one (benchmark.features.extract.FeatureCache.adopt);
* limits: address space (`--sandbox_memory_gb`), size of any file written
  (`--sandbox_file_gb`), wall time (`--sandbox_time_s`, by default the
  config's own bound: benchmark.configs.config.BenchmarkConfig.time_limit).

Tools, in order: bubblewrap (`bwrap`, Debian package bubblewrap: an empty
root with the view bound into it, a private /dev, /proc and /tmp, new
network, PID and IPC namespaces, killed with its parent), else `unshare`
from util-linux with user, mount, network and PID namespaces, where a shell
script builds the same view on a tmpfs and chroots into it. `TOOLS` lists
them; `available_tool()` probes each once (both need unprivileged user
namespaces, or root).

What the child may not do, it cannot: a read outside its view fails with
ENOENT, a write with EROFS, a connection with ENETUNREACH; a limit hit ends
it and the parent prints one line naming the limit.
"""

import dataclasses
import functools
import importlib.util
import os
import resource
import shutil
import signal
import subprocess
import sys

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


@dataclasses.dataclass(frozen=True)
class View:
    """What the sandboxed child sees of the file system: nothing else exists.

    Attributes:
      read_only: (source, target) absolute paths (files or folders) bound
        read-only at `target`.
      writable: (source, target) absolute folders bound read-write.
      links: (target text, path) symbolic links to create (/bin -> usr/bin).
      cwd: the child's working folder (created empty unless bound).
    """

    read_only: tuple = ()
    writable: tuple = ()
    links: tuple = ()
    cwd: str = "/"

    def plus(self, read_only=(), writable=(), cwd=None):
        """Returns this view with more paths: each a path (bound at the same
        place) or a (source, target) pair."""
        return dataclasses.replace(
            self,
            read_only=self.read_only + _pairs(read_only),
            writable=self.writable + _pairs(writable),
            cwd=cwd or self.cwd,
        )

    def binds(self):
        """Returns [(kind "ro"/"rw", source, target)], parents before children
        so that a folder bound inside another stays visible."""
        binds = [("ro", s, t) for s, t in self.read_only]
        binds += [("rw", s, t) for s, t in self.writable]
        return sorted(binds, key=lambda b: (b[2].count("/"), b[2]))


def _pairs(paths):
    pairs = []
    for path in paths:
        source, target = (path, path) if isinstance(path, str) else path
        source = os.path.realpath(source)
        if os.path.exists(source):
            pairs.append((source, os.path.abspath(target)))
    return tuple(pairs)


# The system part of every view: programs and libraries (read-only), and of
# /etc only what the dynamic loader and the C library read.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/hosts",
    "/etc/fonts",
)
PROJECT_PACKAGES = ("zoo", "export", "benchmark")


def system_view(cwd=None):
    """Returns the View every sandboxed run starts from: SYSTEM_DIRS and
    SYSTEM_ETC, the Python installation (its prefixes: a virtual
    environment and the interpreter it was made from, and any other
    site-packages folder on sys.path) and the folders of the project's
    packages, all read-only; `cwd` (default: this process's)
    as an empty working folder."""
    links, read_only = [], []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            links.append((os.readlink(path), path))
        elif os.path.isdir(path):
            read_only.append(path)
    read_only += [p for p in SYSTEM_ETC if os.path.exists(p)]
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    read_only += sorted(prefixes)
    # Library folders outside the prefixes (user site, .pth-added ones).
    libraries = ("site-packages", "dist-packages")
    read_only += [
        p for p in sys.path if os.path.isdir(p) and os.path.basename(p) in libraries
    ]
    for name in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(name)
        read_only += list(spec.submodule_search_locations or []) if spec else []
    view = View(links=tuple(links), cwd=os.path.abspath(cwd or os.getcwd()))
    return view.plus(read_only=read_only)


def _bwrap(argv, view):
    cmd = ["bwrap", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for target, path in view.links:
        cmd += ["--symlink", target, path]
    for kind, source, target in view.binds():
        cmd += ["--ro-bind" if kind == "ro" else "--bind", source, target]
    cmd += ["--dir", view.cwd, "--remount-ro", "/tmp", "--remount-ro", "/"]
    cmd += ["--chdir", view.cwd]
    cmd += ["--unshare-net", "--unshare-pid", "--unshare-ipc"]
    cmd += ["--die-with-parent", "--new-session", "--"]
    return cmd + list(argv)


# Inside new user, mount, network and PID namespaces: an empty tmpfs root
# (read-only once built, and so is its /tmp),
# /dev with only its harmless devices, /proc and /tmp, then the view's
# links and binds (read-only ones remounted so), then chroot into it. The
# arguments: ROOT, then KIND SOURCE TARGET triples (ro, rw, ln), then --,
# the working folder and the command.
_UNSHARE_SCRIPT = """
set -e
root=$1; shift
mount -t tmpfs -o mode=755 zoo-sandbox "$root"
mkdir -p "$root/dev/shm" "$root/proc" "$root/tmp"
for d in null zero full random urandom tty; do
  : > "$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"
done
mount -t tmpfs tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/tmp"
while [ "$1" != -- ]; do
  kind=$1; source=$2; target=$3; shift 3
  if [ "$kind" = ln ]; then
    mkdir -p "$root$(dirname "$target")"; ln -sfn "$source" "$root$target"; continue
  fi
  if [ -d "$source" ]; then mkdir -p "$root$target"
  else mkdir -p "$root$(dirname "$target")"; : > "$root$target"; fi
  mount --bind "$source" "$root$target"
  if [ "$kind" = ro ]; then mount -o remount,bind,ro "$root$target"; fi
done
shift
cwd=$1; shift
mkdir -p "$root$cwd"
mount -o remount,ro "$root/tmp"
mount -o remount,ro zoo-sandbox "$root"
exec chroot "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
"""


def _unshare(argv, view, root):
    cmd = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid"]
    cmd += ["--ipc", "--fork", "--kill-child", "--", "sh", "-c", _UNSHARE_SCRIPT]
    cmd += ["sh", root]
    for target, path in view.links:
        cmd += ["ln", target, path]
    for kind, source, target in view.binds():
        cmd += [kind, source, target]
    return cmd + ["--", view.cwd, *argv]


def command(tool, argv, view, root=None):
    """Returns `argv` wrapped to run under `tool` seeing only `view`;
    `unshare` builds its root in `root`, an empty folder of the caller's."""
    if tool == "bwrap":
        return _bwrap(argv, view)
    return _unshare(argv, view, root)


@functools.lru_cache(maxsize=None)
def works(tool):
    """Returns whether `tool` is installed and can build its sandbox here
    (probed once: it must run `true` inside one)."""
    if not shutil.which(tool):
        return False
    import tempfile

    with tempfile.TemporaryDirectory(prefix="zoo-sandbox-probe-") as root:
        try:
            probe = subprocess.run(
                command(tool, ["true"], system_view("/"), root),
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


def run(tool, argv, view, limits, env=None, stderr=None, stdout=None):
    """Runs `argv` under `tool`, seeing only `view` (a View), within `limits`
    and returns its exit status; raises SandboxError (one line naming the
    limit) when the child was killed by a signal or ran out of time. stdout
    is inherited (progress streams) unless `stdout` is given."""
    import tempfile

    env = dict(os.environ if env is None else env, **{ENV_TOOL: tool})
    with tempfile.TemporaryDirectory(prefix="zoo-sandbox-root-") as root:
        proc = subprocess.Popen(
            command(tool, argv, view, root),
            env=env,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=_apply_limits(limits),
        )
        return _wait(proc, limits)


def _wait(proc, limits):
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
