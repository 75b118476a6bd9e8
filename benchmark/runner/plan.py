"""Benchmark plans: modules x datasets x evaluations as idempotent jobs that
any engine can run (a loop, a Slurm job array, a Kubernetes Indexed Job).

  zoo-benchmark --config=NAME --modules=A,B --datasets=d1,d2 \\
      --bundle_root=DIR --shard=I/N

The plan's jobs are, in a fixed order, one per (module, evaluation of the
config, dataset) for evaluations that run on the config's `datasets`, and one
per (module, evaluation) for those with their own data. Job j belongs to
shard I of N when j % N == I. Each job is the plain single-module command
(the plan's RunRequest with module M, evaluations E [and datasets D],
written to a temporary file and run as `zoo-benchmark --request=...`; the
bundle's manifest keeps it),
sandboxed as usual) writing its bundle to DIR/<key>, the key a sha256 of
everything that determines its result (module handle, config, overrides,
evaluation, dataset, input overrides). A job whose bundle is already there
and passes benchmark.results.bundle.check is skipped, so re-running a shard, or the
whole plan after a failure, does only what is missing. `zoo-leaderboard
merge DIR/*` gathers the bundles.
"""

import dataclasses
import glob
import hashlib
import json
import os
import subprocess
import sys
import tempfile

from benchmark.results import bundle as bundles


@dataclasses.dataclass(frozen=True)
class Job:
    module: str
    evaluation: str
    dataset: str | None  # None: the evaluation's own data


def parse_shard(text):
    """Returns (I, N) of "I/N" (0 <= I < N); ValueError otherwise."""
    if not text:
        return 0, 1
    index, sep, count = str(text).partition("/")
    if not (
        sep and index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)
    ):
        raise ValueError(f"--shard={text} must be I/N with 0 <= I < N, e.g. 0/4")
    return int(index), int(count)


def plan_jobs(config, modules, only=None):
    """Returns the plan's jobs in their fixed order."""
    from benchmark.configs.config import _defaults

    jobs = []
    names = list(dict.fromkeys(e.evaluator for e in config.evaluations))
    for module in modules:
        for name in names:
            if only and name not in only:
                continue
            entries = [e for e in config.evaluations if e.evaluator == name]
            own = all(
                e.data is not None or _defaults(name).get("data") for e in entries
            )
            if own:
                jobs.append(Job(module, name, None))
            else:
                jobs += [Job(module, name, d) for d in config.datasets]
    return jobs


def job_key(job, request):
    """Returns the content key of a job: what determines its result."""
    options = request.options
    identity = {
        "module": job.module,
        "evaluation": job.evaluation,
        "dataset": job.dataset,
        "config": request.config,
        "set": list(request.overrides),
        "max_per_class": request.max_per_class,
        "batch_size": request.batch_size,
        "load": [
            options.image_size,
            options.signature,
            options.value_range,
            options.output,
        ],
    }
    if options.input_normalization:  # keys of earlier plans stay as they were
        identity["input_normalization"] = options.input_normalization
    return hashlib.sha256(bundles.canonical(identity)).hexdigest()[:24]


def job_request(job, request, out):
    """Returns the plan's request narrowed to one job (its bundle at `out`)."""
    return request.replace(
        module=job.module,
        evaluations=(job.evaluation,),
        datasets=(job.dataset,) if job.dataset else request.datasets,
        bundle=out,
        leaderboard=None,
    )


def done(path):
    """Returns whether `path` holds a finished, intact job bundle."""
    if not bundles.is_bundle(path):
        return False
    try:
        return not bundles.check(bundles.read(path))
    except bundles.BundleError:
        return False


def run_plan(request, modules, shard, bundle_root):
    """Runs this process's shard of the plan of `request` over `modules`;
    returns the bundle paths."""
    from zoo.files import write_atomic

    if not modules:
        raise ValueError("--shard needs a plan: pass --modules=A[,B...]")
    if not bundle_root:
        raise ValueError("a plan writes one bundle per job: pass --bundle_root=DIR")
    if request.module or request.bundle:
        raise ValueError(
            "a plan takes --modules and --bundle_root, not --module/--bundle"
        )
    index, count = parse_shard(shard)
    jobs = plan_jobs(request.load_config(), modules, request.evaluations)
    mine = [j for i, j in enumerate(jobs) if i % count == index]
    os.makedirs(bundle_root, exist_ok=True)
    print(
        f"[plan] {len(jobs)} jobs, shard {index}/{count} runs {len(mine)}", flush=True
    )
    paths, failed = [], []
    with tempfile.TemporaryDirectory(prefix="zoo-plan-requests-") as requests:
        for n, job in enumerate(mine, start=1):
            key = job_key(job, request)
            out = os.path.join(bundle_root, key)
            what = f"{job.module} {job.evaluation} {job.dataset or '(own data)'}"
            paths.append(out)
            if done(out):
                print(f"[plan] {n}/{len(mine)} done already: {what}", flush=True)
                continue
            print(f"[plan] {n}/{len(mine)} running: {what}", flush=True)
            path = os.path.join(requests, f"{key}.json")
            job_request(job, request, out).write(path)
            cmd = [sys.executable, "-m", "benchmark.cli.benchmark", f"--request={path}"]
            if subprocess.run(cmd).returncode != 0:
                failed.append(what)
    plan = json.dumps([dataclasses.asdict(j) for j in jobs], indent=1)
    write_atomic(os.path.join(bundle_root, "plan.json"), plan)
    if failed:
        raise ValueError(
            f"{len(failed)} of {len(mine)} jobs failed ({'; '.join(failed)}); rerun "
            "the same command to retry only those"
        )
    print(f"[plan] shard {index}/{count}: {len(mine)} bundles in {bundle_root}")
    return paths


def bundle_paths(root):
    """Returns the job bundles under a plan's --bundle_root."""
    return sorted(p for p in glob.glob(os.path.join(root, "*")) if bundles.is_bundle(p))
