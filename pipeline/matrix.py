"""The zoo matrix: objectives x architectures x seeds, each run trained (or
resumed) and then exported as a TF-Hub module.

Run names are ARCH_LABEL_seedN, LABEL an objective or a variant's label
(an objective with other settings: a temperature, a longer schedule); run i
trains in WORKDIR/train/NAME and
exports to WORKDIR/modules/NAME (plus NAME.tar.gz with `archive`). A finished
run (its train_info.json exists) is not retrained, and a module is exported
again only when missing, so rerunning the command after a preemption goes on
where it stopped.
"""

import dataclasses
import itertools
import json
import os

from export.hub_module import export_hub_module
from zoo.configs import load_config
from zoo.trainer import (
    INFO_NAME,
    load_trained_model,
    train_and_evaluate,
    validate_config,
)


@dataclasses.dataclass
class MatrixConfig:
    """What the matrix trains.

    Args:
      config: training config name or .py path.
      objectives: objective names.
      archs: architecture names (None: the config's).
      seeds: seeds.
      workdir: root of the runs and modules.
      overrides: TrainConfig field overrides for every run.
      export: export each run after training.
      archive: also write each module as a .tar.gz.
      shard: (I, N): train only the cells whose index % N == I.
      transfer: the transfer dataset spec the benchmark stage scores on.
      chexpert: the Chexpert data spec (chexpert:DIR), or None.
      benchmark: None, or a function of this MatrixConfig returning the
        BenchmarkConfig every exported module is scored on, or a tuple of
        them, run in turn (pipeline.study).
      analysis: None, or a function of this MatrixConfig returning the
        AnalysisConfig run on each seed's modules together.
      reference: the objective the analyses compare with (CKA's reference).
      variants: label -> TrainConfig field overrides, one of them
        "objective": cells trained beside `objectives` for every arch and
        seed, each named ARCH_LABEL_seedN (e.g. {"cosine_softmax_t0.01":
        {"objective": "cosine_softmax", "objective_hparams":
        {"temperature": 0.01}}}). Their settings apply after `overrides`.
      only_configs: None, or the names of the benchmark configs this
        invocation scores (the others wait for a later run; markers and
        bundles keep the names of the full list).
      arms: arm name -> {"labels": labels (objectives or variants) that
        zoo-reproduce reports together, each arm with its own rank
        correlations and figure; "paper": optional regular expression of the
        paper rows' objective names drawn beside them}. The per-seed
        analyses cover `objectives` only.
    """

    config: str = "digits"
    objectives: tuple = ("softmax",)
    archs: tuple | None = None
    seeds: tuple = (0,)
    workdir: str = "runs/matrix"
    overrides: dict = dataclasses.field(default_factory=dict)
    export: bool = True
    archive: bool = False
    shard: tuple = (0, 1)
    transfer: str | None = None
    chexpert: str | None = None
    benchmark: object = None
    analysis: object = None
    reference: str = "softmax"
    variants: dict = dataclasses.field(default_factory=dict)
    arms: dict = dataclasses.field(default_factory=dict)
    only_configs: tuple | None = None

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def source_dataset(self):
        """Returns the pretraining dataset spec of every run."""
        return self.overrides.get("dataset") or load_config(self.config).dataset

    def run_name(self, arch, label, seed):
        return f"{arch}_{label}_seed{seed}"

    def labels(self):
        """Returns every cell label: the objectives, then the variants."""
        return tuple(self.objectives) + tuple(self.variants)

    def run_labels(self):
        """Returns {run name: (label, seed)} of every cell."""
        archs = self.archs or (load_config(self.config).arch,)
        return {
            self.run_name(arch, label, seed): (label, seed)
            for seed, arch, label in itertools.product(self.seeds, archs, self.labels())
        }

    def check_variants(self):
        """Raises ValueError for a variant without an objective, a label
        used twice, or an arm naming an unknown label."""
        for label, settings in self.variants.items():
            if "objective" not in settings:
                raise ValueError(
                    f"matrix variant {label!r} names no objective; give it "
                    '"objective": NAME beside its other settings'
                )
            if label in self.objectives:
                raise ValueError(
                    f"matrix variant {label!r} is also an objective of the "
                    "matrix; give the variant another label"
                )
        known = set(self.labels())
        for arm, spec in self.arms.items():
            unknown = [x for x in spec.get("labels", ()) if x not in known]
            if unknown or not spec.get("labels"):
                raise ValueError(
                    f"matrix arm {arm!r} names {unknown or 'no labels'}; its "
                    "labels must be objectives or variants of the matrix"
                )

    @property
    def leaderboard(self):
        """The study's own leaderboard: WORKDIR/leaderboard.csv."""
        return os.path.join(self.workdir, "leaderboard.csv")


def run_configs(matrix):
    """Returns [(name, TrainConfig)] for every cell, validated before any work."""
    matrix.check_variants()
    base = load_config(matrix.config)
    archs = matrix.archs or (base.arch,)
    cells = []
    # Seed-major: a study interrupted part-way has whole seeds (every
    # objective), which is what its per-seed analyses need.
    for seed, arch, label in itertools.product(matrix.seeds, archs, matrix.labels()):
        settings = dict(matrix.variants.get(label, {}))
        objective = settings.pop("objective", label)
        config = base.for_objective(objective).replace(
            arch=arch, seed=seed, **{**matrix.overrides, **settings}
        )
        validate_config(config)
        cells.append((matrix.run_name(arch, label, seed), config))
    if not cells:
        raise ValueError("empty matrix; pass --objectives, --archs and --seeds")
    return cells


def shard_cells(cells, shard):
    """Returns the cells of shard (I, N): those whose index % N == I."""
    index, count = shard
    return [c for i, c in enumerate(cells) if i % count == index]


def run_matrix(matrix, strategy=None, report=print, after_cell=None):
    """Trains and exports every cell; returns [{"name", "workdir", "module",
    "holdout_top1"}] in matrix order. `after_cell(entry)` is called with
    each cell's entry as soon as it is trained and exported."""
    index, count = matrix.shard
    all_cells = run_configs(matrix)
    cells = shard_cells(all_cells, matrix.shard)
    if count > 1:
        report(f"[matrix] shard {index}/{count}: {len(cells)} of {len(all_cells)} runs")
    summary = []
    for i, (name, config) in enumerate(cells, start=1):
        report(f"== [{i}/{len(cells)}] {name} ==")
        workdir = os.path.join(matrix.workdir, "train", name)
        if os.path.isfile(os.path.join(workdir, INFO_NAME)):
            with open(os.path.join(workdir, INFO_NAME)) as f:
                info = json.load(f)
            report(f"[matrix] {name}: already trained, skipping training")
        else:
            info = train_and_evaluate(config, workdir, strategy, report).info
        module = None
        if matrix.export:
            module = _export(matrix, name, workdir, report)
        summary.append(
            {
                "name": name,
                "workdir": workdir,
                "module": module,
                "holdout_top1": info["holdout"].get("top1"),
            }
        )
        if after_cell is not None:
            after_cell(summary[-1])
    return summary


def _export(matrix, name, workdir, report):
    out = os.path.join(matrix.workdir, "modules", name)
    if not os.path.isfile(os.path.join(out, "saved_model.pb")):
        model, objective, info = load_trained_model(workdir)
        out, sha = export_hub_module(model, objective, info, out, name=name)
        report(f"[export] {out} sha256 {sha[:12]}")
    if matrix.archive and not os.path.isfile(out + ".tar.gz"):
        from export.archive import pack_module

        sha = pack_module(out, out + ".tar.gz")
        report(f"[export] {out}.tar.gz sha256 {sha[:12]}")
    return out
