"""Scores one module on one dataset with a list of evaluators and returns
provenance-rich leaderboard rows (the harness only loops over evaluators)."""

import time

from benchmark import leaderboard
from benchmark.evaluators import create_evaluator
from benchmark.extract import extract_features
from zoo import data as zoo_data
from zoo.provenance import environment

# Metric per dataset (REFERENCE.md): mean per-class accuracy for Pets and
# Flowers, top-1 everywhere else.
MEAN_PER_CLASS_DATASETS = ("tfds:oxford_iiit_pet", "tfds:oxford_flowers102")


def dataset_metric(dataset_name):
    """Returns "mean_per_class" or "top1", the accuracy the protocol reports."""
    base = dataset_name.split(":")[0:2]
    return "mean_per_class" if ":".join(base) in MEAN_PER_CLASS_DATASETS else "top1"


def benchmark_module(
    module,
    dataset,
    evaluations,
    *,
    max_per_class=None,
    cache_dir=None,
    evaluator_config=None,
    provenance=None,
    report=print,
):
    """Runs each evaluator in `evaluations` on the features of `module` (a
    LoadedModule) for `dataset` (an ImageDataset) and returns leaderboard rows.

    `evaluator_config` maps evaluator name -> keyword config; `provenance`
    holds extra row fields (arch, objective, pretrain_dataset, seed).
    """
    evaluators = [
        create_evaluator(name, **(evaluator_config or {}).get(name, {}))
        for name in evaluations
    ]
    metric = dataset_metric(dataset.name)
    sets = {}
    for split in (dataset.train_split, dataset.test_split):
        sets[split] = extract_features(
            module,
            dataset,
            split,
            max_per_class=max_per_class,
            cache_dir=cache_dir,
            report=report,
        )
    train, test = sets[dataset.train_split], sets[dataset.test_split]
    meta = module.metadata
    base = {
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
    base.update(provenance or {})
    rows = []
    for evaluator in evaluators:
        start = time.perf_counter()
        measurements = list(evaluator.run(train, test, metric=metric))
        seconds = time.perf_counter() - start
        protocol = dict(evaluator.protocol(), metric=metric, input=module.contract())
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


def load_and_benchmark(
    handle,
    dataset_spec,
    evaluations,
    *,
    data_dir=None,
    image_size=None,
    signature=None,
    **kwargs,
):
    """Loads `handle` and `dataset_spec`, then returns `benchmark_module` rows."""
    from benchmark.modules import load_module

    dataset = zoo_data.load_dataset(dataset_spec, data_dir=data_dir)
    for name in evaluations:  # unknown evaluator names fail before any work
        create_evaluator(name)
    module = load_module(handle, image_size=image_size, signature=signature)
    return benchmark_module(module, dataset, evaluations, **kwargs)
