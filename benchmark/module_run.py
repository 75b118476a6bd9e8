"""Runs one module evaluator (fine-tuning, Chexpert, ImageNet-OOD,
calibration) and turns its measurements into leaderboard rows with the same
provenance as benchmark/run.py: module hash, arch / objective / pretraining
data / seed from metadata.json, dataset, split, sizes, the protocol as JSON,
the selected hyperparameters, code and TensorFlow versions, device, seconds
and a timestamp. Rows are appended only after the whole evaluation succeeded.
"""

import time

from benchmark import leaderboard
from benchmark.evaluators.module_base import create_module_evaluator, load_saved_module
from zoo.provenance import environment


def evaluate_module(
    module,
    evaluation,
    data,
    *,
    config=None,
    strategy=None,
    provenance=None,
    report=print,
):
    """Returns the leaderboard rows of module evaluator `evaluation` run on
    `module` (handle, LoadedModule or SavedModule) and `data`.

    Args:
      config: the evaluator's keyword config.
      strategy: a tf.distribute strategy for evaluators that train.
      provenance: extra row fields overriding the module's metadata
        (arch, objective, pretrain_dataset, seed).
      report: receives one-line progress messages.
    """
    evaluator = create_module_evaluator(evaluation, **(config or {}))
    saved = load_saved_module(module, getattr(evaluator, "image_size", None))
    start = time.perf_counter()
    measurements = list(evaluator.run(saved, data, strategy=strategy, report=report))
    seconds = round(time.perf_counter() - start, 3)
    protocol = dict(evaluator.protocol(), input=saved.contract())
    base = _base_row(saved)
    base.update(provenance or {})
    rows = []
    for m in measurements:
        rows.append(
            leaderboard.make_row(
                **base,
                evaluation=evaluator.name,
                dataset=m.dataset,
                split=m.split,
                train_size=m.train_size,
                test_size=m.test_size,
                metric=m.metric,
                value=m.value,
                protocol=protocol,
                selected=m.selected,
                seconds=seconds,
            )
        )
        report(
            f"[{evaluator.name}] {m.dataset} {m.split}: {m.metric} {m.value:.4f} "
            f"{m.selected or ''}"
        )
    return rows


def evaluate_and_append(leaderboard_path, module, evaluation, data, **kwargs):
    """Returns the rows of `evaluate_module`, after appending them to
    `leaderboard_path`. A foreign leaderboard header fails before any work; a
    failed evaluation appends nothing."""
    leaderboard.read_rows(leaderboard_path)
    rows = evaluate_module(module, evaluation, data, **kwargs)
    if not rows:
        raise ValueError(f"{evaluation} measured nothing; no rows appended")
    leaderboard.append_rows(leaderboard_path, rows)
    return rows


def _base_row(saved):
    """Returns the fields shared by every row of one module."""
    meta = saved.metadata
    return {
        "source": leaderboard.MEASURED,
        "handle": saved.handle,
        "module_sha256": saved.sha256,
        "arch": meta.get("arch", ""),
        "objective": meta.get("objective", ""),
        "pretrain_dataset": meta.get("dataset", ""),
        "seed": meta.get("seed", ""),
        **environment(),
    }
