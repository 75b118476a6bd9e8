"""The whole pipeline on one config: train each objective (zoo), export it as a
TF-Hub module (export), score it on a transfer dataset (benchmark) and append
the rows to a leaderboard, then return the ranked table.

Default: the paper's setting in miniature, pretraining on digits 0-4 and
transferring to the disjoint digits 5-9.
"""

import dataclasses
import os

from benchmark.configs.config import BenchmarkConfig, evaluation
from benchmark.data.transfer import load_benchmark_dataset
from benchmark.modules.loading import load_module
from benchmark.results import leaderboard
from benchmark.runner.harness import base_row, prepare, run_benchmark
from export.hub_module import export_hub_module
from zoo.configs import load_config
from zoo.objectives import create_objective
from zoo.trainer import train_and_evaluate, validate_config

TRANSFER_EVALUATIONS = ("linear_probe", "knn", "class_separation")


@dataclasses.dataclass
class DemoConfig:
    """What the demo runs.

    Args:
      objectives: objective names, one model each.
      config: the training config name or .py path (source data, recipe).
      source: overrides the config's pretraining dataset when set.
      target: the transfer dataset spec.
      workdir: where checkpoints, modules and the run's leaderboard go.
      leaderboard: leaderboard CSV to append to (default workdir/leaderboard.csv).
      overrides: TrainConfig field overrides (arch, epochs, ...).
      target_max_per_class: cap on transfer images per class and split.
      evaluations: transfer evaluators.
      data_dir: TFDS data directory.
    """

    objectives: tuple = ("softmax", "cosine_softmax")
    config: str = "digits"
    source: str | None = None
    target: str = "digits_5to9"
    workdir: str = "runs/demo"
    leaderboard: str | None = None
    overrides: dict = dataclasses.field(default_factory=dict)
    target_max_per_class: int | None = None
    evaluations: tuple = TRANSFER_EVALUATIONS
    data_dir: str | None = None

    @property
    def leaderboard_path(self):
        return self.leaderboard or os.path.join(self.workdir, "leaderboard.csv")


def _train_configs(demo):
    base = load_config(demo.config)
    changes = dict(demo.overrides)
    if demo.source:
        changes["dataset"] = demo.source
    if demo.data_dir:
        changes["data_dir"] = demo.data_dir
    # The config's per-objective settings first; the demo's overrides win.
    return [base.for_objective(name).replace(**changes) for name in demo.objectives]


def validate(demo):
    """Resolves every name and path of the demo, raising before any work.

    Returns (train configs, target dataset).
    """
    if not demo.objectives:
        raise ValueError("no objectives given; pass --objectives=softmax,...")
    configs = _train_configs(demo)
    for config in configs:
        validate_config(config)
    target = load_benchmark_dataset(demo.target, data_dir=demo.data_dir)
    for config in configs:
        prepare(_benchmark_config(demo, config))  # Bad settings fail now.
    leaderboard.read_rows(demo.leaderboard_path)  # a foreign header fails now
    return configs, target


def _benchmark_config(demo, config):
    """Returns the benchmark config of one module: the transfer evaluations on
    the target, and class separation on the pretraining data's test split."""
    return BenchmarkConfig(
        name="demo",
        datasets=(demo.target,),
        evaluations=(
            *(
                evaluation(name, max_per_class=demo.target_max_per_class)
                for name in demo.evaluations
            ),
            evaluation(
                "class_separation",
                data=config.dataset,
                max_per_class=config.max_per_class,
            ),
        ),
    )


def _holdout_row(config, info, module):
    holdout = info["holdout"]
    return leaderboard.make_row(
        **dict(
            base_row(module),
            arch=config.arch,
            objective=config.objective,
            pretrain_dataset=info["dataset"],
            seed=config.seed,
        ),
        evaluation="holdout",
        dataset=info["dataset"],
        split=f"{info['num_holdout']} held out of {info['dataset']} train",
        train_size=info["num_train"],
        test_size=holdout["count"],
        metric="top1",
        value=holdout["top1"],
        protocol={"image_size": config.image_size, "crop_fraction": 0.875},
        seconds=round(sum(h["seconds"] or 0 for h in info["history"]), 3),
    )


def run_demo(demo, report=print):
    """Runs the pipeline for every objective; returns (rows, markdown table)."""
    configs, target = validate(demo)
    all_rows = []
    for i, config in enumerate(configs, start=1):
        report(f"== [{i}/{len(configs)}] objective {config.objective} ==")
        name = f"{config.arch}_{config.objective}_seed{config.seed}"
        result = train_and_evaluate(
            config, os.path.join(demo.workdir, "train", name), report=report
        )
        objective = create_objective(config.objective, **config.objective_hparams)
        out_dir, sha = export_hub_module(
            result.model,
            objective,
            result.info,
            os.path.join(demo.workdir, "modules", name),
            name=name,
        )
        report(f"[export] {out_dir} sha256 {sha[:12]}")
        module = load_module(out_dir)
        rows = [_holdout_row(config, result.info, module)]
        rows += run_benchmark(
            _benchmark_config(demo, config),
            module,
            data_dir=demo.data_dir or config.data_dir,
            cache_dir=os.path.join(demo.workdir, "feature_cache"),
            report=report,
        )
        leaderboard.append_rows(demo.leaderboard_path, rows)
        all_rows += rows
    table = leaderboard.ranked_table(all_rows, rank_by="linear_probe")
    return all_rows, table
