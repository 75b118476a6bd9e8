"""zoo-benchmark: score any image module with a benchmark config and append
the results to a leaderboard.

Examples:
  zoo-benchmark --config=smoke --module=runs/demo/modules/resnet50_softmax_seed0
  zoo-benchmark --config=local --module=PATH --datasets=path/to/cifar10 \\
      --max_per_class=100 --leaderboard=runs/my_leaderboard.csv
  zoo-benchmark --config=paper --module=PATH --data_dir=~/tensorflow_datasets \\
      --evaluations=linear_probe,knn
  zoo-benchmark --config=smoke --module=PATH --set=fine_tune.steps=100 \\
      --set=knn.weighted=true
  zoo-benchmark --config=my_config.py --module=https://example.org/module.tar.gz

A config (benchmark/configs/NAME.py or a .py file) names the evaluators, their
data and settings; --set=KEY=VALUE overrides a config field (max_per_class=50,
datasets=a,b) or an evaluator setting (EVALUATOR.ARG=VALUE, the value read as
JSON when it parses); docs/protocols.md lists the configs. A module is a
SavedModel directory, a .tar.gz archive, a catalog name or an http(s)/gs://
URL, fetched into tensorflow_hub's cache (TFHUB_CACHE_DIR) within
--max_module_mb and --download_deadline_s and rehashed on every use. Its
input size, dtype and value range come from what it declares (--image_size,
--value_range, --signature and --output override them). Modules holding
any op outside the allowlist of pure image-module ops are refused before
anything runs. An evaluator that needs what the module lacks (logits,
fine-tuning) is skipped with a note; each evaluator's rows are appended when
it finishes.
"""

import dataclasses
import os
import shutil
import sys

from absl import flags

from benchmark.configs import list_configs
from export import fetch
from export.fetch import define_flags as define_fetch_flags
from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "module", None, "Module handle: SavedModel dir, .tar.gz, catalog name or URL."
)
flags.DEFINE_string(
    "config",
    "smoke",
    f"Benchmark config: one of {', '.join(list_configs())}, or a .py file "
    "defining get_config().",
)
flags.DEFINE_multi_string(
    "set",
    [],
    "Config override KEY=VALUE (repeatable): a config field (max_per_class=50) "
    "or EVALUATOR.ARG (knn.weighted=true, chexpert.data=chexpert:DIR).",
)
flags.DEFINE_list(
    "datasets",
    None,
    "Dataset specs of the config's per-dataset evaluations (transfer name, "
    "tfds:NAME, image-folder path, ...); same as --set=datasets=...",
)
flags.DEFINE_list("evaluations", None, "Run only these evaluators of the config.")
flags.DEFINE_integer(
    "max_per_class", None, "Cap on images per class and split (--set=max_per_class)."
)
flags.DEFINE_string(
    "leaderboard", "runs/leaderboard.csv", "Leaderboard CSV to append to."
)
flags.DEFINE_string("cache_dir", "runs/feature_cache", "Feature cache directory.")
flags.DEFINE_integer("batch_size", None, "Images per forward pass (--set=batch_size).")
flags.DEFINE_integer("image_size", None, "Override the module's input size.")
flags.DEFINE_string("signature", None, "Override the signature (default: __call__).")
flags.DEFINE_string(
    "output", None, "Pick this entry of a signature that returns a dict."
)
flags.DEFINE_string(
    "value_range",
    None,
    "Override the pixel range the module expects, 'low,high' (0,1 / 0,255 / -1,1); "
    "images in [0, 1] are rescaled to it.",
)
flags.DEFINE_string("data_dir", None, "Prepared TFDS data directory.")
define_fetch_flags()
flags.adopt_module_key_flags(fetch)
flags.DEFINE_string(
    "strategy", "default", "tf.distribute strategy for fine-tuning (zoo.distribute)."
)
flags.DEFINE_enum(
    "sandbox",
    "auto",
    ["auto", "require", "off"],
    "Run the module in a sandboxed child (benchmark.sandbox: no network, "
    "read-only file system, limits): auto uses one when bwrap or unshare works, "
    "require fails without one, off runs in this process.",
)
flags.DEFINE_float(
    "sandbox_memory_gb", None, "Sandbox address-space limit, GiB (default 80% of RAM)."
)
flags.DEFINE_float("sandbox_file_gb", None, "Sandbox limit on any file's size, GiB.")
flags.DEFINE_float(
    "sandbox_time_s",
    None,
    "Sandbox wall-time limit, s (default: the config's bound, e.g. 600 s for "
    "smoke, else 600 s plus 1 s per image read).",
)
flags.DEFINE_string(
    "bundle",
    None,
    "Also write a results bundle (rows, per-example predictions, manifest, "
    "attestation) to this folder (benchmark.bundle).",
)
flags.DEFINE_list(
    "modules",
    None,
    "A plan instead of one --module: every module x dataset x evaluation of the "
    "config becomes one job writing its own bundle under --bundle_root.",
)
flags.DEFINE_string("shard", None, "Run only shard I/N of the plan's jobs (0-based I).")
flags.DEFINE_string("bundle_root", None, "Folder of the plan's job bundles.")
flags.DEFINE_string(
    "baseline",
    None,
    "CI gate: compare the run with this baseline JSON (benchmark.gate); exit 0 "
    "within tolerance, 1 regression, 2 bad input, 3 module/data unreachable, 4 "
    "metrics missing on one side.",
)
flags.DEFINE_bool(
    "update_baseline", False, "Write --baseline when the run passes or none exists."
)
flags.DEFINE_string("junit", None, "CI gate: write a JUnit XML report here.")
flags.DEFINE_string(
    "benchmark_json", None, "CI gate: write github-action-benchmark JSON here."
)
flags.DEFINE_string(
    "record_handle",
    None,
    "Handle written in the rows (default: --module); the sandboxed child gets the "
    "resolved module folder as --module and the original handle here.",
)


def override_list():
    """Returns the config overrides the flags make, in order."""
    overrides = list(FLAGS.set)
    if FLAGS.datasets:
        overrides.append("datasets=" + ",".join(FLAGS.datasets))
    if FLAGS.max_per_class is not None:
        overrides.append(f"max_per_class={FLAGS.max_per_class}")
    if FLAGS.batch_size is not None:
        overrides.append(f"batch_size={FLAGS.batch_size}")
    return overrides


def config_from_flags():
    """Returns the BenchmarkConfig named by --config with every override applied."""
    from benchmark.config import apply_overrides, load_config

    return apply_overrides(load_config(FLAGS.config), override_list())


def main(argv):
    del argv
    from benchmark import leaderboard, sandbox
    from benchmark.harness import prepare
    from benchmark.modules import parse_value_range
    from export.fetch import set_limits
    from zoo.distribute import check_strategy_name

    set_limits(FLAGS.max_module_mb, FLAGS.download_deadline_s)
    if FLAGS.modules or FLAGS.shard:
        from benchmark.plan import run_plan

        run_plan(FLAGS, config_from_flags())
        return None
    if not FLAGS.module:
        raise ValueError("pass --module=HANDLE (or --modules=A,B for a sharded plan)")
    if FLAGS.leaderboard:
        leaderboard.read_rows(FLAGS.leaderboard)  # a foreign header fails first
        leaderboard.writable_path(FLAGS.leaderboard)
    if FLAGS.bundle:
        from benchmark.bundle import check_target

        check_target(FLAGS.bundle)
    if FLAGS.baseline:
        return gate_main(FLAGS.baseline)
    config = config_from_flags()
    prepare(config, FLAGS.evaluations)  # bad settings fail before the module loads
    if FLAGS.image_size is not None and FLAGS.image_size < 1:
        raise ValueError(f"--image_size must be positive, got {FLAGS.image_size}")
    if FLAGS.cache_dir and os.path.exists(FLAGS.cache_dir):
        if not os.path.isdir(FLAGS.cache_dir):
            raise ValueError(
                f"--cache_dir {FLAGS.cache_dir} is a file, not a folder; pass a "
                "folder for the feature cache"
            )
    check_strategy_name(FLAGS.strategy)
    parse_value_range(FLAGS.value_range)
    limits = sandbox.Limits.create(
        FLAGS.sandbox_memory_gb, FLAGS.sandbox_file_gb, FLAGS.sandbox_time_s
    )
    tool = sandbox.choose(FLAGS.sandbox)
    if tool:
        appended = run_sandboxed(tool, config, limits)
    else:
        if FLAGS.sandbox == "auto" and not os.environ.get(sandbox.ENV_TOOL):
            print(
                "[sandbox] neither bwrap nor unshare can build a sandbox here; "
                "running in this process (the op allowlist still applies)",
                flush=True,
            )
        appended = run_here(config)
    if not appended:
        raise ValueError(
            f"config {config.name} measured nothing for {FLAGS.module} (every "
            "evaluator was skipped); no rows appended"
        )
    if os.environ.get(sandbox.ENV_TOOL):
        return  # The sandboxed child: its parent appends and summarises.
    print()
    print(leaderboard.summary_table(appended))
    if FLAGS.leaderboard:
        print(f"\n{len(appended)} rows appended to {FLAGS.leaderboard}")
    if FLAGS.bundle:
        print(f"results bundle: {FLAGS.bundle}")


def gate_main(baseline_path):
    """Runs the benchmark (writing a bundle for its per-example outcomes),
    judges it against the baseline at `baseline_path` and exits with the
    gate's code."""
    import tempfile

    from benchmark import bundle, gate
    from benchmark.datasets import DatasetError
    from benchmark.modules import ModuleError
    from export.fetch import FetchError

    # No baseline yet and --update_baseline: this run writes the first one.
    first = FLAGS.update_baseline and not os.path.exists(baseline_path)
    baseline = None if first else gate.load_baseline(baseline_path)
    for path in (FLAGS.junit, FLAGS.benchmark_json):
        if path and os.path.isdir(path):
            raise ValueError(f"{path} is a folder; pass a file name")
    with tempfile.TemporaryDirectory() as tmp:
        target = FLAGS.bundle or os.path.join(tmp, "bundle")
        FLAGS.bundle, FLAGS.baseline = target, None  # the plain run, then judge
        try:
            main([])
        except (ModuleError, FetchError, DatasetError) as e:
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            sys.exit(gate.UNREACHABLE)
        made = bundle.read(target)
    metrics = gate.run_metrics(made.rows, made.predictions)
    if baseline is None:
        gate.write_baseline(baseline_path, metrics, made.manifest)
        print(f"baseline written to {baseline_path} ({len(metrics)} metrics)")
        return
    judgements = gate.judge(baseline, metrics)
    code = gate.exit_code(judgements)
    report_gate(judgements)
    if code == gate.PASS and FLAGS.update_baseline:
        gate.write_baseline(baseline_path, metrics, made.manifest)
        print(f"baseline updated: {baseline_path}")
    failing = [j for j in judgements if j.verdict != "pass"]
    for j in failing:
        print(f"error: {j.message()}", file=sys.stderr)
    print(f"gate: {len(judgements) - len(failing)}/{len(judgements)} metrics pass")
    sys.exit(code)


def report_gate(judgements):
    """Writes the JUnit, step-summary and benchmark-JSON reports and prints
    GitHub ::error annotations for failing metrics."""
    import json

    from benchmark import gate

    if FLAGS.junit:
        with open(FLAGS.junit, "w") as f:
            f.write(gate.junit_xml(judgements))
    if FLAGS.benchmark_json:
        with open(FLAGS.benchmark_json, "w") as f:
            json.dump(gate.benchmark_json(judgements), f, indent=1)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(gate.step_summary(judgements))
    if os.environ.get("GITHUB_ACTIONS"):
        for j in judgements:
            if j.verdict != "pass":
                print(f"::error title=benchmark regression::{j.message()}")


def run_here(config):
    """Runs the benchmark in this process, appending each evaluator's rows to
    --leaderboard as it finishes; returns the rows."""
    from benchmark import leaderboard
    from benchmark.harness import run_benchmark
    from benchmark.modules import parse_value_range
    from zoo.distribute import create_strategy

    load = dict(
        image_size=FLAGS.image_size,
        signature=FLAGS.signature,
        value_range=parse_value_range(FLAGS.value_range),
        output=FLAGS.output,
    )
    appended, record = [], {}

    def append(rows):
        if FLAGS.leaderboard:
            leaderboard.append_rows(FLAGS.leaderboard, rows)
        appended.extend(rows)

    run_benchmark(
        config,
        FLAGS.module,
        only=FLAGS.evaluations,
        data_dir=FLAGS.data_dir,
        cache_dir=FLAGS.cache_dir,
        strategy=create_strategy(FLAGS.strategy),
        load=load,
        provenance={"handle": FLAGS.record_handle} if FLAGS.record_handle else None,
        on_rows=append,
        record=record,
        report=lambda line: print(line, flush=True),
    )
    if FLAGS.bundle and appended:
        from benchmark.bundle import write

        write(
            FLAGS.bundle,
            appended,
            record["predictions"],
            bundle_manifest(appended, record),
        )
    return appended


def bundle_manifest(rows, record):
    """Returns the manifest of this run's results bundle."""
    from benchmark.modules import URL_PREFIXES
    from zoo.provenance import environment, utc_timestamp

    handle = FLAGS.record_handle or FLAGS.module
    return {
        "handle": handle,
        "url": handle if handle.startswith(URL_PREFIXES) else "",
        "module_sha256": rows[0]["module_sha256"],
        "config": FLAGS.config,
        "overrides": override_list(),
        "evaluations": list(FLAGS.evaluations or []),
        "load": {
            "image_size": FLAGS.image_size,
            "signature": FLAGS.signature,
            "value_range": FLAGS.value_range,
            "output": FLAGS.output,
        },
        "datasets": record.get("datasets", {}),
        "tolerances": {},
        "created": utc_timestamp(),
        **environment(),
    }


def run_sandboxed(tool, config, limits):
    """Runs this same command in a sandboxed child (benchmark.sandbox) and
    appends the rows it measured; returns them.

    This process fetches and scans the module and opens every dataset (the
    child has no network), then the child runs with --module set to the
    verified local folder, seeing only the system, the module, the data it
    is given and this module's cache entries (read-only) and its own run
    folder. Only this process writes the leaderboard and the feature cache:
    it adopts the entries the child computed after checking each one
    (FeatureCache.adopt). Rows of evaluators the child finished are kept
    even when it fails later.
    """
    import tempfile

    from benchmark import leaderboard, sandbox
    from benchmark.context import EvaluationContext
    from benchmark.extract import FeatureCache
    from benchmark.harness import open_datasets, prepare
    from benchmark.modules import resolve_handle
    from zoo.provenance import sha256_tree

    # A local module is checked first (cheap); a remote one after the
    # datasets, so a missing dataset fails before a long download.
    local = os.path.exists(os.path.expanduser(FLAGS.module))
    path = resolve_handle(FLAGS.module) if local else None  # op scan, nothing runs
    context = EvaluationContext(None, data_dir=FLAGS.data_dir, report=lambda line: None)
    open_datasets(prepare(config, FLAGS.evaluations), context)
    datasets = context.opened_datasets()
    path = path or resolve_handle(FLAGS.module)  # fetch + op scan
    if FLAGS.sandbox_time_s is None:
        images = sum(d.size_hint(config.max_per_class) for d in datasets)
        limits = dataclasses.replace(limits, time_s=config.time_limit(images))
    run_dir = tempfile.mkdtemp(prefix="zoo-benchmark-sandbox-")
    for sub in ("tmp", "config", "home", "cache"):
        os.makedirs(os.path.join(run_dir, sub))
    child_cache = os.path.join(run_dir, "cache")
    cache = FeatureCache(FLAGS.cache_dir, report=print) if FLAGS.cache_dir else None
    sha = sha256_tree(path)
    lent = cache.entries_of(sha) if cache else []
    read_only = [path, *[p for d in datasets for p in d.source_paths()]]
    read_only += [FLAGS.data_dir] if FLAGS.data_dir else []
    read_only += [FLAGS.config] if os.path.isfile(FLAGS.config) else []
    read_only += [(p, os.path.join(child_cache, os.path.basename(p))) for p in lent]
    view = sandbox.system_view().plus(read_only=read_only, writable=[run_dir])
    rows_path = os.path.join(run_dir, "rows.csv")
    argv = [sys.executable, "-m", "benchmark.main", *sys.argv[1:]]
    argv += [
        f"--module={path}",
        f"--record_handle={FLAGS.record_handle or FLAGS.module}",
        f"--leaderboard={rows_path}",
        f"--cache_dir={child_cache}",
        "--sandbox=off",
        "--baseline=",  # the gate is judged here, in the parent
        "--noupdate_baseline",
        "--junit=",
        "--benchmark_json=",
    ]
    child_bundle = os.path.join(run_dir, "bundle")
    if FLAGS.bundle:
        argv.append(f"--bundle={child_bundle}")
    env = dict(
        os.environ,
        TMPDIR=os.path.join(run_dir, "tmp"),
        MPLCONFIGDIR=os.path.join(run_dir, "config"),
        HOME=os.path.join(run_dir, "home"),
    )
    print(
        f"[sandbox] {tool}: {FLAGS.module} runs with no network, seeing only the "
        f"system, the module, its data and {len(lent)} cached entries of its own "
        f"(read-only) and its run folder, for at most {limits.time_s:g} s",
        flush=True,
    )
    log = os.path.join(run_dir, "stderr.txt")
    failure = None
    try:
        with open(log, "wb") as stderr:
            code = sandbox.run(tool, argv, view, limits, env=env, stderr=stderr)
    except sandbox.SandboxError as e:
        code, failure = None, str(e)
    rows = leaderboard.read_rows(rows_path) if os.path.exists(rows_path) else []
    if rows and FLAGS.leaderboard:
        leaderboard.append_rows(FLAGS.leaderboard, rows)
    if code == 0:
        if cache:
            adopt_entries(cache, child_cache, sha, {os.path.basename(p) for p in lent})
        if FLAGS.bundle:
            from benchmark import bundle

            made = bundle.read(child_bundle)
            bundle.write(FLAGS.bundle, made.rows, made.predictions, made.manifest)
        shutil.rmtree(run_dir, ignore_errors=True)
        return rows
    kept = (
        f"; {len(rows)} finished rows were appended"
        if rows and FLAGS.leaderboard
        else ""
    )
    if code == 2:  # The child's own one-line error.
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
        shutil.rmtree(run_dir, ignore_errors=True)
        message = lines[-1] if lines else "error: the sandboxed run refused its input"
        print(message + kept, file=sys.stderr)
        sys.exit(2)
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


def run():
    run_main(main)


if __name__ == "__main__":
    run()
