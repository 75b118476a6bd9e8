"""The one harness loop: build the config's evaluators, load the module, run
each evaluator through one EvaluationContext and turn its measurements into
provenance-rich leaderboard rows (built here, in one place).

Everything that can be checked before work is checked first, cheapest first:
the evaluators are built (bad settings fail), every dataset they read is
opened (unknown or missing data fails), then the module is loaded and
probed. An evaluator whose requirement the module lacks (features, logits,
fine-tuning) is skipped with a one-line note. `on_rows` receives each
evaluator's rows as soon as it finishes, so a long run appends complete
results as it goes.
"""

import os
import time

from benchmark.evaluators.context import EvaluationContext
from benchmark.features.extract import PROTOCOL_CROP_FRACTION, preprocessing
from benchmark.modules import cost
from benchmark.modules.loading import Module, load_module
from benchmark.modules.sandbox import ENV_TOOL
from benchmark.results import fingerprint, leaderboard
from zoo.provenance import environment


def prepare(config, only=None):
    """Returns the built evaluators of `config` (see BenchmarkConfig.evaluators)."""
    return config.evaluators(only)


def run_benchmark(
    config,
    module,
    *,
    only=None,
    data_dir=None,
    cache_dir=None,
    strategy=None,
    load=None,
    provenance=None,
    on_rows=None,
    record=None,
    timings=None,
    report=print,
):
    """Returns the leaderboard rows of `module` under `config`.

    Args:
      config: a benchmark.configs.config.BenchmarkConfig.
      module: a handle or a loaded benchmark.modules.loading.Module.
      only: run only the evaluators with these names.
      data_dir: the TFDS data folder.
      cache_dir: the feature cache folder (None: no disk cache).
      strategy: a tf.distribute strategy for evaluators that train.
      load: keyword overrides of `load_module` (image_size, signature,
        value_range, output) when `module` is a handle.
      provenance: extra row fields overriding the module's metadata
        (arch, objective, pretrain_dataset, seed).
      on_rows: called with each evaluator's rows when it finishes.
      record: a dict filled for results bundles: "datasets" ({name:
        fingerprint} of every dataset read) and "predictions" ({row key:
        {example id: prediction}} of the rows whose protocol has them).
      timings: a list extended with (stage, seconds) in run order: datasets
        opened, module load, its profile, each extraction and each
        evaluator's own work ("fit NAME": its time less its extractions).
      report: receives one-line progress messages.
    """
    evaluators = prepare(config, only)
    context = EvaluationContext(
        None,
        data_dir=data_dir,
        cache_dir=cache_dir,
        batch_size=config.batch_size,
        strategy=strategy,
        report=report,
    )
    stages = context.timings
    open_datasets(evaluators, context)  # Every dataset opens before the module.
    if record is not None:
        record.setdefault("predictions", {})
        record["datasets"] = {
            d.name: d.fingerprint() for d in context.opened_datasets()
        }
    if not isinstance(module, Module):
        start = time.perf_counter()
        module = load_module(module, **(load or {}))
        report(describe_contract(module))
        stages.append(("module load and scan", time.perf_counter() - start))
    context.module = module
    base = base_row(module, provenance)
    start = time.perf_counter()
    base.update(cost.profile(module, config.batch_size, report=report))
    stages.append(("module profile", time.perf_counter() - start))
    report(f"{cost.describe(base)} ({stages[-1][1]:.1f} s)")
    data = {d.name: d.fingerprint() for d in context.opened_datasets()}
    rows, measured = [], []
    for i, evaluator in enumerate(evaluators, start=1):
        where = f"[{i}/{len(evaluators)}] {evaluator.name}"
        reason = evaluator.missing(module)
        if reason:
            report(f"[skip] {where}: {reason}")
            continue
        report(f"[benchmark] {where} on {getattr(evaluator, 'data', None) or '-'}")
        start, before = time.perf_counter(), len(stages)
        measurements = list(evaluator.run(context))
        seconds = round(time.perf_counter() - start, 3)
        inner = sum(s for _, s in stages[before:])
        stages.append((f"fit {evaluator.name}", max(0.0, seconds - inner)))
        new = measurement_rows(
            base, module, config, evaluator, measurements, seconds, data
        )
        if record is not None:
            for row, m in zip(new, measurements):
                if m.predictions:
                    record["predictions"][leaderboard.row_key(row)] = m.predictions
        for row in new:
            report(
                f"[benchmark] {row['evaluation']} {row['dataset']} {row['split']}: "
                f"{row['metric']} {float(row['value']):.4f}"
            )
        if on_rows and new:
            on_rows(new)
        rows += new
        measured += [(evaluator, m) for m in measurements]
    for line in probe_warnings(measured):
        report(line)
    if timings is not None:
        timings.extend(stages)
    return rows


# A probe counts as at chance below this margin over the majority class, and
# kNN as informative above it.
CHANCE_MARGIN = 0.05


def probe_warnings(measured):
    """Returns one warning line per suspicious linear probe among
    (evaluator, Measurement) pairs: every L2 value tied on validation, or
    accuracy at chance (the majority class's share of the test labels) on a
    dataset where kNN is not. Both usually mean the features' scale is far
    from what the probe's regularisation grid expects."""
    knn = {
        m.dataset: m.value
        for e, m in measured
        if e.name == "knn" and m.metric == "accuracy"
    }
    lines = []
    for evaluator, m in measured:
        if evaluator.name != "linear_probe" or m.metric != "accuracy":
            continue
        where = f"[warn] linear_probe on {m.dataset}"
        hint = (
            "the features' scale is likely far from what its L2 grid expects "
            "(huge or tiny activations, or the wrong --input_normalization); "
            "check the module's input normalisation or rescale its features"
        )
        ties, grid = m.selected.get("ties"), getattr(evaluator, "num_l2", None)
        if ties and grid and ties >= grid:
            lines.append(f"{where}: all {grid} L2 values tie on validation; {hint}")
            continue
        labels = [true for _, true in m.predictions.values()]
        if not labels or m.dataset not in knn:
            continue
        chance = max(labels.count(c) for c in set(labels)) / len(labels)
        if m.value <= chance + CHANCE_MARGIN < knn[m.dataset] - CHANCE_MARGIN:
            lines.append(
                f"{where} is at chance ({100 * m.value:.1f}%, majority class "
                f"{100 * chance:.1f}%) while knn reaches {100 * knn[m.dataset]:.1f}%: "
                f"{hint}"
            )
    return lines


SOURCE_NOTES = {
    "default": "default: the module declares none",
    "input dtype": "from its input dtype",
    "metadata": "from its metadata.json",
    "signature": "from its signature",
    "override": "as passed",
}


def describe_contract(module):
    """Returns the [module] line: what the module is and what it will be fed,
    each guess with where it came from."""
    c = module.contract()

    def note(source):
        return SOURCE_NOTES.get(source, source)

    what = f"{c['feature_dim']}-d features" if module.has_features else "logits only"
    via = (c["signature"] or "logits") + (f"[{c['output']}]" if c["output"] else "")
    return (
        f"[module] {module.handle} ({c['format']}, sha256 {module.sha256[:12]}): "
        f"{what} from {via}; input {c['image_size']} px "
        f"({note(c['size_source'])}), {c['input_dtype']}, normalised "
        f"{c['input_normalization']} ({note(c['normalization_source'])})"
    )


def open_datasets(evaluators, context):
    """Opens (and, for TFDS builders, prepares) every dataset `evaluators`
    read, so a missing one fails before any module work."""
    for evaluator in evaluators:
        for spec in evaluator.data_specs():
            context.dataset(spec)


def base_row(module, provenance=None):
    """Returns the leaderboard fields shared by every row of one module."""
    meta = module.metadata
    row = {
        "source": leaderboard.MEASURED,
        "handle": module.handle,
        "module_sha256": module.sha256,
        "arch": meta.get("arch", ""),
        "objective": meta.get("objective", ""),
        "pretrain_dataset": meta.get("dataset", ""),
        "seed": meta.get("seed", ""),
        **environment(),
        "sandbox": os.environ.get(ENV_TOOL) or "off",
    }
    row.update(provenance or {})
    return row


def measurement_rows(base, module, config, evaluator, measurements, seconds, data=None):
    """Returns the leaderboard rows of one evaluator's measurements: the
    evaluator's protocol plus the config name, the module's input contract and
    the preprocessing of its evaluation images, and each row's protocol
    fingerprint (benchmark.results.fingerprint; `data` maps dataset names to
    their content fingerprints)."""
    crop = getattr(
        evaluator,
        "crop_fraction",
        getattr(evaluator, "eval_crop_fraction", PROTOCOL_CROP_FRACTION),
    )
    settings = evaluator.protocol()
    protocol = dict(
        settings,
        config=config.name,
        input=module.contract(),
        preprocessing=preprocessing(module, crop),
    )
    data = data or {}
    return [
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
            fingerprint=fingerprint.measured(
                settings,
                evaluator.version,
                m.dataset,
                data.get(m.dataset, ""),
                m.split,
                protocol["preprocessing"],
            ),
        )
        for m in measurements
    ]
