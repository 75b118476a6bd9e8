"""What an evaluator is given: the module, its datasets and cached outputs."""

import collections
import time

from benchmark.data.transfer import load_benchmark_dataset, size_mismatches
from benchmark.features import extract

MEMORY_ENTRIES = 8


class EvaluationContext:
    """The loaded module and the data of one benchmark run.

    Evaluators reach everything through it: datasets by spec (loaded once),
    the module's features or logits on a split through the one cached
    extraction loop (`benchmark.features.extract.extract`; the last MEMORY_ENTRIES
    results stay in memory, the disk cache keeps every one across runs), the
    module itself (`module.load()` gives a fresh copy to fine-tune), the
    tf.distribute strategy and the progress callback. `timings` lists
    (stage, seconds) of each dataset opened and each extraction not served
    from memory, marked when the disk cache served it (perf/benchmark_cost.py
    prints them).

    Args:
      module: a benchmark.modules.loading.Module.
      data_dir: the TFDS data folder (TFDS's default when None).
      cache_dir: the feature cache folder (None: no disk cache).
      batch_size: images per forward pass of the extraction.
      strategy: a tf.distribute.Strategy for evaluators that train.
      report: receives one-line progress messages.
    """

    def __init__(
        self,
        module,
        *,
        data_dir=None,
        cache_dir=None,
        batch_size=128,
        strategy=None,
        report=print,
    ):
        self.module = module
        self.data_dir = data_dir
        self.cache = extract.FeatureCache(cache_dir, report) if cache_dir else None
        self.batch_size = batch_size
        self.strategy = strategy
        self.report = report
        self._datasets = {}
        self._outputs = collections.OrderedDict()
        self.timings = []

    def opened_datasets(self):
        """Returns the datasets opened so far, in the order they were."""
        return list(self._datasets.values())

    def dataset(self, spec):
        """Returns the dataset named by `spec` (loaded once per run); a
        transfer set whose split sizes differ from the registry is reported."""
        if not spec:
            raise ValueError("an evaluation has no dataset; set its data")
        if spec not in self._datasets:
            start = time.perf_counter()
            dataset = load_benchmark_dataset(spec, data_dir=self.data_dir)
            for line in size_mismatches(dataset):
                self.report(f"[data] warning: {line}")
            self._datasets[spec] = dataset
            self.timings.append((f"open {spec}", time.perf_counter() - start))
        return self._datasets[spec]

    def features(
        self,
        dataset,
        split,
        *,
        output="features",
        max_per_class=None,
        crop_fraction=extract.PROTOCOL_CROP_FRACTION,
        transform=None,
    ):
        """Returns the FeatureSet of the module's `output` ("features",
        "logits" or "endpoint:NAME", a spatial endpoint averaged over its
        grid) on `dataset`'s `split` (see `benchmark.features.extract.extract`)."""
        key = (
            id(dataset),
            split,
            output,
            max_per_class,
            crop_fraction,
            repr(sorted(transform.key.items())) if transform else None,
        )
        if key in self._outputs:
            self._outputs.move_to_end(key)
        else:
            start, hits = time.perf_counter(), self.cache and self.cache.hits
            self._outputs[key] = extract.extract(
                self.module,
                dataset,
                split,
                output=output,
                max_per_class=max_per_class,
                batch_size=self.batch_size,
                crop_fraction=crop_fraction,
                transform=transform,
                cache=self.cache,
                report=self.report,
            )
            label = extract._label(dataset, split, output, transform)
            if max_per_class:
                label += f" ({max_per_class}/class)"
            if self.cache and self.cache.hits != hits:
                label += " (from the disk cache)"
            self.timings.append((f"features {label}", time.perf_counter() - start))
            while len(self._outputs) > MEMORY_ENTRIES:
                self._outputs.popitem(last=False)
        return self._outputs[key]
