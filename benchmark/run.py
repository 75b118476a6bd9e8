"""Scores one module on one dataset with a list of evaluators and returns
provenance-rich leaderboard rows (the harness only loops over evaluators)."""

import time

from benchmark import leaderboard
from benchmark.datasets import dataset_metric, load_benchmark_dataset, size_mismatches
from benchmark.evaluators import create_evaluator
from benchmark.extract import PROTOCOL_CROP_FRACTION, extract_features, preprocessing
from zoo.provenance import environment


def benchmark_module(
    module,
    dataset,
    evaluations,
    *,
    max_per_class=None,
    cache_dir=None,
    evaluator_config=None,
    provenance=None,
    batch_size=128,
    report=print,
):
    """Runs each evaluator in `evaluations` on the features of `module` (a
    LoadedModule) for `dataset` (an ImageDataset) and returns leaderboard rows.

    The metric is the dataset's (`benchmark.datasets.dataset_metric`).
    `evaluator_config` maps evaluator name -> keyword config; `provenance`
    holds extra row fields (arch, objective, pretrain_dataset, seed).
    """
    evaluators = [
        create_evaluator(name, **(evaluator_config or {}).get(name, {}))
        for name in evaluations
    ]
    metric = dataset_metric(dataset)
    if max_per_class is None:
        for line in size_mismatches(dataset):
            report(f"[data] warning: {line}")
    train_split, test_split = dataset.train_split, dataset.test_split
    sets = extract_features(
        module,
        dataset,
        (train_split, test_split),
        max_per_class=max_per_class,
        batch_size=batch_size,
        cache_dir=cache_dir,
        report=report,
    )
    train, test = sets[train_split], sets[test_split]
    base = _base_row(module, dataset, train, test)
    base.update(provenance or {})
    rows = []
    for evaluator in evaluators:
        start = time.perf_counter()
        measurements = list(evaluator.run(train, test, metric=metric))
        seconds = time.perf_counter() - start
        protocol = dict(
            evaluator.protocol(metric),
            input=module.contract(),
            preprocessing=preprocessing(module, PROTOCOL_CROP_FRACTION),
        )
        if max_per_class:
            protocol["max_per_class"] = max_per_class
        for m in measurements:
            rows.append(
                leaderboard.make_row(
                    **base,
                    evaluation=evaluator.name,
                    metric=m.metric,
                    value=m.value,
                    protocol=protocol,
                    selected=m.selected,
                    seconds=round(seconds, 3),
                )
            )
            report(
                f"[benchmark] {evaluator.name} on {dataset.name}: {m.metric} "
                f"{m.value:.4f} {m.selected or ''}"
            )
    return rows


def _base_row(module, dataset, train, test):
    """Returns the leaderboard fields shared by every row of one run."""
    meta = module.metadata
    return {
        "source": "measured",
        "handle": module.handle,
        "module_sha256": module.sha256,
        "arch": meta.get("arch", ""),
        "objective": meta.get("objective", ""),
        "pretrain_dataset": meta.get("dataset", ""),
        "seed": meta.get("seed", ""),
        "dataset": dataset.name,
        "split": f"{dataset.train_split}->{dataset.test_split}",
        "train_size": len(train),
        "test_size": len(test),
        **environment(),
    }


def load_and_benchmark(
    handle,
    dataset_spec,
    evaluations,
    *,
    data_dir=None,
    image_size=None,
    signature=None,
    value_range=None,
    **kwargs,
):
    """Loads `handle` and `dataset_spec`, then returns `benchmark_module` rows."""
    from benchmark.modules import load_module

    dataset = load_benchmark_dataset(dataset_spec, data_dir=data_dir)
    for name in evaluations:  # unknown evaluator names fail before any work
        create_evaluator(name)
    module = load_module(
        handle, image_size=image_size, signature=signature, value_range=value_range
    )
    return benchmark_module(module, dataset, evaluations, **kwargs)
