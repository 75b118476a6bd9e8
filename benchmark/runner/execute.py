"""Running one RunRequest: checks first, then the benchmark in this process
or in a sandboxed child, rows to the leaderboard and a results bundle.

`execute(request)` is what zoo-benchmark, zoo-submit and `benchmark.evaluate`
call; it takes no flags and changes no process-wide state (fetch limits are
set only for the call). The sandboxed child is `python -m benchmark.cli.benchmark
--request=FILE` with the same request, pointed at the verified module
folder and its own run folder.
"""

import dataclasses
import os
import shutil
import subprocess
import sys

from benchmark.runner.request import RunRequest


class RunError(ValueError):
    """A run that could not measure anything; one line."""


def precheck(request):
    """Raises ValueError (one line) for what can be checked before TensorFlow
    loads: a module is named and, when it is a local path, exists; the
    config name; the input normalisation and value range; the image size.
    Imports nothing heavy, so bad arguments fail at once."""
    from benchmark import configs
    from export import normalization
    from zoo.config_files import check_config_name

    if not request.module:
        raise ValueError("pass --module=HANDLE (or --modules=A,B for a sharded plan)")
    check_config_name(
        request.config, os.path.dirname(configs.__file__), "benchmark config"
    )
    normalization.check_options(
        request.options.input_normalization, request.options.value_range
    )
    size = request.options.image_size
    if size is not None and size < 1:
        raise ValueError(f"--image_size must be positive, got {size}")
    check_module_handle(request.module)


def check_module_handle(handle):
    """Raises ValueError (one line, with "did you mean" for a catalog-name
    typo) unless `handle` is a URL, an existing path or a catalog entry;
    imports nothing heavy (zoo-benchmark, zoo-submit and zoo-analyze call it
    before TensorFlow loads)."""
    module = os.path.expanduser(handle)
    looks_local = module.startswith((".", "/", "~")) or os.sep in module
    remote = module.startswith(("http://", "https://", "gs://", "kaggle:"))
    if remote or os.path.exists(module):
        return
    hint = ""
    if not looks_local:  # a catalog name, or a typo of one
        from export.catalog import CatalogError, load_catalog
        from zoo.registry import did_you_mean

        try:
            entries = load_catalog(None)["entries"]
        except CatalogError:
            return  # the catalog's own error comes when it is resolved
        known = [e["name"] for e in entries] + [e["handle"] for e in entries]
        if handle in known:
            return
        hint = did_you_mean(handle, [e["name"] for e in entries])
    raise ValueError(
        f"module {handle} not found; {hint}pass a SavedModel directory, "
        "a .keras or .h5 file, a .tar.gz archive, an http(s)/gs:// URL or a "
        "catalog name (zoo-pull --list)"
    )


def check(request, config):
    """Raises ValueError for anything in `request` that can be checked before
    work: the leaderboard, the bundle folder, the evaluators' settings, the
    cache folder, the strategy, the value range or input normalisation and
    the sandbox limits."""
    from benchmark.modules import sandbox
    from benchmark.results import leaderboard
    from benchmark.runner.harness import prepare
    from zoo.distribute import check_strategy_name

    if not request.module:
        raise ValueError("pass --module=HANDLE (or --modules=A,B for a sharded plan)")
    if request.leaderboard:
        leaderboard.read_rows(request.leaderboard)  # a foreign header fails first
        leaderboard.writable_path(request.leaderboard)
    if request.bundle:
        from benchmark.results.bundle import check_target

        check_target(request.bundle)
    prepare(config, request.evaluations)  # bad settings fail before the module
    size = request.options.image_size
    if size is not None and size < 1:
        raise ValueError(f"--image_size must be positive, got {size}")
    cache = request.cache_dir
    if cache and os.path.exists(cache) and not os.path.isdir(cache):
        raise ValueError(
            f"--cache_dir {cache} is a file, not a folder; pass a folder for the "
            "feature cache"
        )
    check_strategy_name(request.strategy)
    request.options.load_kwargs()  # the value range and normalisation parse
    return sandbox.Limits.create(
        request.sandbox_memory_gb, request.sandbox_file_gb, request.sandbox_time_s
    )


def execute(request, report=print):
    """Runs `request` and returns the rows it measured (appended to its
    leaderboard and written to its bundle as they come). `report` receives
    progress lines (None: silent, a sandboxed child's output included).
    Raises ValueError (one line) for bad input, and RunError when nothing
    was measured."""
    from benchmark.modules import sandbox
    from export.fetch import limits_set

    quiet = report is None
    report = report or (lambda line: None)
    precheck(request)  # before TensorFlow loads: bad arguments fail at once
    with limits_set(request.max_module_mb, request.download_deadline_s):
        config = request.load_config()
        limits = check(request, config)
        tool = sandbox.choose(request.sandbox)
        if tool:
            rows = run_sandboxed(tool, request, config, limits, report, quiet)
        else:
            if request.sandbox == "auto" and not os.environ.get(sandbox.ENV_TOOL):
                report(
                    "[sandbox] neither bwrap nor unshare can build a sandbox here; "
                    "running in this process (the op allowlist still applies)"
                )
            rows = run_here(request, config, report)
    if not rows:
        raise RunError(
            f"config {config.name} measured nothing for {request.module} (every "
            "evaluator was skipped); no rows appended"
        )
    return rows


def row_fields(request):
    """Returns the row fields a request sets over the module's metadata: the
    recorded handle and the display name (None when it sets neither)."""
    fields = {"handle": request.record_handle, "name": request.name}
    return {k: v for k, v in fields.items() if v} or None


def run_here(request, config, report=print, module=None):
    """Runs the benchmark in this process, appending each evaluator's rows to
    the request's leaderboard as it finishes; returns the rows. `module`, a
    loaded benchmark.modules.loading.Module, replaces the request's handle."""
    from benchmark.results import leaderboard
    from benchmark.runner.harness import run_benchmark
    from zoo.distribute import create_strategy

    appended, record = [], {}

    def append(rows):
        if request.leaderboard:
            leaderboard.append_rows(request.leaderboard, rows)
        appended.extend(rows)

    run_benchmark(
        config,
        module or request.module,
        only=request.evaluations,
        data_dir=request.data_dir,
        cache_dir=request.cache_dir,
        strategy=create_strategy(request.strategy),
        load=request.options.load_kwargs(),
        provenance=row_fields(request),
        on_rows=append,
        record=record,
        report=report,
    )
    if request.bundle and appended:
        from benchmark.results.bundle import write

        write(
            request.bundle,
            appended,
            record["predictions"],
            bundle_manifest(request, appended, record),
        )
    return appended


def stored_request(request):
    """Returns what a bundle keeps of `request` to re-run it elsewhere: the
    original handle, the config, overrides, data, options and limits, but
    no local output folders."""
    return request.replace(
        module=request.handle,
        record_handle=None,
        leaderboard=None,
        bundle=None,
        cache_dir=None,
        sandbox="auto",
    )


def bundle_manifest(request, rows, record):
    """Returns the manifest of this run's results bundle (with its request)."""
    from benchmark.modules.loading import URL_PREFIXES
    from benchmark.results import leaderboard
    from zoo.provenance import environment, utc_timestamp

    handle = request.handle
    options = dataclasses.asdict(request.options)
    return {
        "handle": handle,
        "url": handle if handle.startswith(URL_PREFIXES) else "",
        "module_sha256": rows[0]["module_sha256"],
        "config": request.config,
        "overrides": request.config_overrides(),
        "evaluations": list(request.evaluations or []),
        "load": options,
        "request": stored_request(request).to_dict(),
        "datasets": record.get("datasets", {}),
        "model": {c: rows[0].get(c, "") for c in leaderboard.MODEL_COLUMNS},
        "tolerances": {},
        "created": utc_timestamp(),
        **environment(),
    }


def run_sandboxed(tool, request, config, limits, report=print, quiet=False):
    """Runs `request` in a sandboxed child (benchmark.modules.sandbox) and appends the
    rows it measured; returns them.

    This process fetches and scans the module and opens every dataset (the
    child has no network), then the child runs the same request pointed at
    the verified local folder, seeing only the system, the module, the data
    it is given and this module's cache entries (read-only) and its own run
    folder. Only this process writes the leaderboard and the feature cache:
    it adopts the entries the child computed after checking each one
    (FeatureCache.adopt). Rows of evaluators the child finished are kept
    even when it fails later.
    """
    import tempfile

    from benchmark.evaluators.context import EvaluationContext
    from benchmark.features.extract import FeatureCache
    from benchmark.modules import sandbox
    from benchmark.modules.loading import module_sha256, resolve_handle
    from benchmark.results import leaderboard
    from benchmark.runner.harness import open_datasets, prepare

    # A local module is checked first (cheap); a remote one after the
    # datasets, so a missing dataset fails before a long download.
    local = os.path.exists(os.path.expanduser(request.module))
    path = resolve_handle(request.module) if local else None  # scan only
    context = EvaluationContext(None, data_dir=request.data_dir, report=lambda x: None)
    open_datasets(prepare(config, request.evaluations), context)
    datasets = context.opened_datasets()
    path = path or resolve_handle(request.module)  # fetch + op scan
    if request.sandbox_time_s is None:
        images = sum(d.size_hint(config.max_per_class) for d in datasets)
        limits = dataclasses.replace(limits, time_s=config.time_limit(images))
    run_dir = tempfile.mkdtemp(prefix="zoo-benchmark-sandbox-")
    for sub in ("tmp", "config", "home", "cache"):
        os.makedirs(os.path.join(run_dir, sub))
    child_cache = os.path.join(run_dir, "cache")
    cache = request.cache_dir and FeatureCache(request.cache_dir, report=report)
    sha = module_sha256(path)
    lent = cache.entries_of(sha) if cache else []
    read_only = [path, *[p for d in datasets for p in d.source_paths()]]
    read_only += [request.data_dir] if request.data_dir else []
    read_only += [request.config] if os.path.isfile(request.config) else []
    read_only += [(p, os.path.join(child_cache, os.path.basename(p))) for p in lent]
    view = sandbox.system_view().plus(read_only=read_only, writable=[run_dir])
    rows_path = os.path.join(run_dir, "rows.csv")
    child_bundle = os.path.join(run_dir, "bundle")
    child = request.replace(
        module=path,
        record_handle=request.handle,
        leaderboard=rows_path,
        cache_dir=child_cache,
        bundle=child_bundle if request.bundle else None,
        sandbox="off",
    )
    child.write(os.path.join(run_dir, "request.json"))
    argv = [sys.executable, "-m", "benchmark.cli.benchmark"]
    argv += [f"--request={os.path.join(run_dir, 'request.json')}"]
    env = dict(
        os.environ,
        TMPDIR=os.path.join(run_dir, "tmp"),
        MPLCONFIGDIR=os.path.join(run_dir, "config"),
        HOME=os.path.join(run_dir, "home"),
    )
    report(
        f"[sandbox] {tool}: {request.module} runs with no network, seeing only the "
        f"system, the module, its data and {len(lent)} cached entries of its own "
        f"(read-only) and its run folder, for at most {limits.time_s:g} s"
    )
    log = os.path.join(run_dir, "stderr.txt")
    failure = None
    try:
        with open(log, "wb") as stderr:
            out = subprocess.DEVNULL if quiet else None
            code = sandbox.run(tool, argv, view, limits, env, stderr, stdout=out)
    except sandbox.SandboxError as e:
        code, failure = None, str(e)
    rows = leaderboard.read_rows(rows_path) if os.path.exists(rows_path) else []
    if rows and request.leaderboard:
        leaderboard.append_rows(request.leaderboard, rows)
    if code == 0:
        if cache:
            adopt_entries(cache, child_cache, sha, {os.path.basename(p) for p in lent})
        if request.bundle:
            from benchmark.results import bundle

            # The child's manifest already holds stored_request(request): it
            # resets every field the child's request changes.
            made = bundle.read(child_bundle)
            bundle.write(request.bundle, made.rows, made.predictions, made.manifest)
        shutil.rmtree(run_dir, ignore_errors=True)
        return rows
    kept = (
        f"; {len(rows)} finished rows were appended"
        if rows and request.leaderboard
        else ""
    )
    if code == 2:  # The child's own one-line error.
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        shutil.rmtree(run_dir, ignore_errors=True)
        message = lines[-1] if lines else "the sandboxed run refused its input"
        raise ValueError(message.removeprefix("error: ") + kept)
    failure = failure or sandbox.describe_exit(code, limits)
    shutil.rmtree(child_cache, ignore_errors=True)  # never adopted
    raise sandbox.SandboxError(f"{failure}{kept} (the child's log: {log})")


def adopt_entries(cache, child_cache, module_sha256, lent):
    """Adopts into `cache` the entries a successful sandboxed child wrote to
    `child_cache` (not those it was lent); one line per refused entry."""
    for name in sorted(os.listdir(child_cache)):
        if name in lent or not name.endswith(".npz"):
            continue
        if not cache.adopt(os.path.join(child_cache, name), module_sha256):
            print(
                f"[features] the sandboxed run's cache entry {name} is not a valid "
                "entry of this module; not cached",
                flush=True,
            )


__all__ = ["RunError", "RunRequest", "execute", "run_here", "run_sandboxed"]
