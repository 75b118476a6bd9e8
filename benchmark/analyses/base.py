"""The contract every representation analysis fulfils.

An analysis is a streamed statistic of the outputs of one or more modules on
one dataset split: it never holds the dataset's features, only sufficient
statistics, so memory does not grow with the dataset. The engine
(benchmark.runner.analyze) runs the forward passes and feeds every analysis:

  start(layers)             layers: {module key: [layer names]}
  update(outputs, labels)   outputs: {module key: {layer: np.ndarray}}, one
                            forward chunk; pooled [b, d] arrays, or raw
                            activations when `raw` is set
  second(outputs, labels)   a second pass, when `second_pass` is set
  finish(heads)             -> AnalysisResult; heads: {module key: (W, b) or
                            None}, the classifier of each module

Attributes: `pairwise` (compares modules: CKA), `needs_labels`, `raw`,
`second_pass`, `passes` and `augment` (extra augmented passes, CKA only).
Each subclass documents its formula in its docstring, validates its settings
in the constructor (AnalysisError, one line) and reports them, with the
conventions it uses, in `protocol()`. tests/test_analyses.py holds an oracle
test for every registered analysis and fails when one is missing.
"""

import dataclasses

import numpy as np

FEATURES = "features"  # the layer name of a module's feature vector


class AnalysisError(ValueError):
    """An invalid analysis setting or input; the message says the fix."""


@dataclasses.dataclass
class AnalysisResult:
    """What an analysis found.

    data: everything, JSON-serialisable (written to <out>/<name>.json).
    scalars: (module key, metric, value, extra protocol) rows for the
      leaderboard; metric names a layer as "metric:layer" except for the
      feature vector, which is the bare metric.
    """

    data: dict
    scalars: list


class Analysis:
    """Base class; subclasses set `name` and override `update` and `finish`."""

    name = ""
    pairwise = False
    needs_labels = False
    raw = False
    second_pass = False
    passes = 1
    augment = False

    def settings(self):
        """Returns the analysis's settings as a JSON-serialisable dict."""
        return {}

    def conventions(self):
        """Returns the conventions the numbers depend on (recorded)."""
        return {}

    def protocol(self):
        return {"analysis": self.name, **self.settings(), **self.conventions()}

    def start(self, layers):
        self.layers = {key: list(names) for key, names in layers.items()}

    def update(self, outputs, labels):
        raise NotImplementedError

    def second(self, outputs, labels):
        del outputs, labels

    def finish(self, heads):
        raise NotImplementedError

    @staticmethod
    def metric(metric, layer):
        """Returns the leaderboard metric of `metric` at `layer`."""
        return metric if layer == FEATURES else f"{metric}:{layer}"

    def _positive_int(self, **values):
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise AnalysisError(
                    f"{self.name}: {key} must be a positive integer, got {value!r}"
                )


def as_float64(array):
    """Returns `array` as a float64 numpy array."""
    return np.asarray(array, dtype=np.float64)
