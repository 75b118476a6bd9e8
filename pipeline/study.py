"""A study: the zoo matrix (pipeline.matrix) followed by the benchmark and
the representation analyses of every module it exported, all resumable.

Stages, each skipped when its result is already on disk:
  1. train and export every cell (pipeline.matrix.run_matrix);
  2. benchmark, right after each cell's export: the module through the single
     harness under each of the matrix's benchmark configs in turn; rows go to
     WORKDIR/leaderboard.csv as each evaluator finishes, and
     WORKDIR/benchmark/NAME.json (the first config) or NAME.CONFIG.json (each
     further one) marks the module done under that config;
  3. analyses, as soon as a seed's last module is scored (runs are
     seed-major): per seed, all of that seed's modules together (so CKA
     compares each with the reference objective's module on the same
     images); JSON and figures in WORKDIR/analysis/seedN/, scalars appended
     to the leaderboard. A seed waits until all its modules exist.
With --shard=I/N, stage 2 follows the training shard and stage 3 takes the
seeds whose index % N == I.
"""

import json
import os
import shutil
import time

from benchmark.report.analysis_plots import write_json
from benchmark.results import leaderboard
from pipeline.matrix import run_matrix

STUDY_FILE = "study.json"


def run_study(matrix, strategy=None, report=print):
    """Runs every stage of `matrix`; returns the training summary. Writes
    WORKDIR/study.json (the data and sizes it used) for zoo-reproduce."""
    if matrix.benchmark is not None:  # an unknown --benchmark_configs fails first
        selected_configs(matrix, [name for name, _ in benchmark_configs(matrix)])
    if matrix.benchmark is not None or matrix.analysis is not None:
        write_json(os.path.join(matrix.workdir, STUDY_FILE), study_record(matrix))

    def after(cell):  # score each module, analyse each seed, once they exist
        if matrix.benchmark is not None:
            benchmark_modules(matrix, [cell], strategy, report)
        if matrix.analysis is not None:
            analyze_seeds(matrix, report, quiet=True)

    summary = run_matrix(matrix, strategy, report, after_cell=after)
    if matrix.analysis is not None:
        analyze_seeds(matrix, report)
    return summary


def study_record(matrix):
    """Returns what a report needs to know about how `matrix` ran."""
    return {
        "dataset": matrix.source_dataset(),
        "transfer": matrix.transfer,
        "chexpert": matrix.chexpert,
        "objectives": list(matrix.objectives),
        "seeds": list(matrix.seeds),
        "overrides": matrix.overrides,
        "config": matrix.config,
        "reference": matrix.reference,
        "variants": matrix.variants,
        "arms": [[name, spec] for name, spec in matrix.arms.items()],  # in order
    }


def apply_record(matrix, workdir):
    """Returns `matrix` with workdir and the data its WORKDIR/study.json
    records (unchanged when there is none)."""
    matrix = matrix.replace(workdir=workdir)
    path = os.path.join(workdir, STUDY_FILE)
    if not os.path.isfile(path):
        return matrix
    with open(path) as f:
        record = json.load(f)
    return matrix.replace(
        transfer=record["transfer"],
        chexpert=record["chexpert"],
        objectives=tuple(record["objectives"]),
        seeds=tuple(record["seeds"]),
        overrides={**record["overrides"], "dataset": record["dataset"]},
        reference=record["reference"],
        variants=record.get("variants", matrix.variants),
        arms=dict(record.get("arms", matrix.arms.items())),
    )


def benchmark_configs(matrix):
    """Returns [(config name, what runs it)] of the matrix's benchmark: its
    `benchmark` function returns one or several of a RunRequest (run like
    any submitter's, its rows also written to a results bundle) or a
    BenchmarkConfig (rows only)."""
    from benchmark.runner.request import RunRequest

    items = matrix.benchmark(matrix)
    items = tuple(items) if isinstance(items, (tuple, list)) else (items,)
    return [
        (i.load_config().name if isinstance(i, RunRequest) else i.name, i)
        for i in items
    ]


def selected_configs(matrix, names):
    """Returns the benchmark config names of `names` this invocation runs
    (matrix.only_configs, or all); raises ValueError for an unknown one."""
    if matrix.only_configs is None:
        return set(names)
    unknown = [n for n in matrix.only_configs if n not in names]
    if unknown:
        raise ValueError(
            f"--benchmark_configs names {', '.join(unknown)}, not a benchmark "
            f"config of this matrix; choose from {', '.join(names)}"
        )
    return set(matrix.only_configs)


def _scored_name(name, index, config_name):
    """Returns NAME for the matrix's first benchmark config, NAME.CONFIG for
    each further one: how its marker and bundle are named."""
    return name if index == 0 else f"{name}.{config_name}"


def done_marker(matrix, name, index, config_name):
    """Returns the file that marks module `name` scored under config
    number `index` (named `config_name`) of the matrix."""
    scored = _scored_name(name, index, config_name)
    return os.path.join(matrix.workdir, "benchmark", f"{scored}.json")


def bundle_folder(matrix, name, index, config_name):
    """Returns the results bundle of module `name` under config `index`."""
    return os.path.join(
        matrix.workdir, "bundles", _scored_name(name, index, config_name)
    )


def benchmark_modules(matrix, summary, strategy=None, report=print):
    """Scores each exported module of `summary` under each benchmark config
    it is not yet marked done for; a RunRequest's rows also go to the
    module's results bundle, WORKDIR/bundles/NAME[.CONFIG]."""
    from benchmark.runner.harness import run_benchmark
    from benchmark.runner.request import RunRequest

    configs = benchmark_configs(matrix)
    chosen = selected_configs(matrix, [name for name, _ in configs])
    labels = matrix.run_labels()
    board = matrix.leaderboard
    cache = os.path.join(matrix.workdir, "feature_cache")
    for cell in summary:
        if cell["module"] is None:
            continue
        for index, (config_name, item) in enumerate(configs):
            if config_name not in chosen:
                continue
            done = done_marker(matrix, cell["name"], index, config_name)
            if os.path.isfile(done):
                continue
            label = "" if index == 0 else f" ({config_name})"
            report(f"== [benchmark] {cell['name']}{label} ==")
            start = time.perf_counter()
            if isinstance(item, RunRequest):
                from benchmark.runner.execute import execute

                bundle = bundle_folder(matrix, cell["name"], index, config_name)
                if os.path.isdir(bundle):  # from a run that stopped before its marker
                    shutil.rmtree(bundle)
                # A variant's rows carry its label as display name, so views
                # keep it apart from its objective's cells (seeds pool by
                # objective and name).
                cell_label = labels.get(cell["name"], ("", None))[0]
                rows = execute(
                    item.replace(
                        module=cell["module"],
                        name=cell_label if cell_label in matrix.variants else item.name,
                        leaderboard=board,
                        cache_dir=cache,
                        bundle=bundle,
                        sandbox="off",  # the study's own modules
                    ),
                    report=report,
                )
            else:
                rows = run_benchmark(
                    item,
                    cell["module"],
                    cache_dir=cache,
                    strategy=strategy,
                    on_rows=lambda new: leaderboard.append_rows(board, new),
                    report=report,
                )
            write_json(
                done,
                {
                    "module": cell["module"],
                    "rows": len(rows),
                    "seconds": round(time.perf_counter() - start, 1),
                    "config": config_name,
                },
            )


def analyze_seeds(matrix, report=print, quiet=False):
    """Runs the analyses of each seed (of this shard) whose modules all exist;
    `quiet`: say nothing about seeds still waiting for modules."""
    from benchmark.runner.analysis_run import run_analyses

    config = matrix.analysis(matrix)
    index, count = matrix.shard
    for i, seed in enumerate(matrix.seeds):
        if i % count != index:
            continue
        out = os.path.join(matrix.workdir, "analysis", f"seed{seed}")
        if os.path.isfile(os.path.join(out, "done.json")):
            continue
        handles = seed_modules(matrix, seed)
        missing = [h for h in handles if not os.path.isfile(f"{h}/saved_model.pb")]
        if missing:
            if quiet:
                continue
            report(
                f"[analyze] seed {seed}: waiting for {len(missing)} module(s) "
                f"(first: {missing[0]})"
            )
            continue
        report(f"== [analyze] seed {seed}: {len(handles)} modules ==")
        start = time.perf_counter()
        run_analyses(
            config,
            config.build(),
            handles,
            out,
            leaderboard_path=matrix.leaderboard,
            report=report,
        )
        write_json(
            os.path.join(out, "done.json"),
            {"seconds": round(time.perf_counter() - start, 1), "modules": handles},
        )


def seed_modules(matrix, seed):
    """Returns the module folders of one seed, the reference objective first."""
    from zoo.configs import load_config

    archs = matrix.archs or (load_config(matrix.config).arch,)
    objectives = sorted(matrix.objectives, key=lambda o: o != matrix.reference)
    return [
        os.path.join(matrix.workdir, "modules", matrix.run_name(arch, o, seed))
        for arch in archs
        for o in objectives
    ]
