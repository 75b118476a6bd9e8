"""The evaluator contract, its result type and the one evaluator registry.

Division of labour (big_vision style):
  * an evaluator is one protocol, built from keyword config: the constructor
    stores one attribute per argument, under the argument's name, and
    validates it (a bad setting fails before any work);
  * `protocol()` returns every setting but `data` as a JSON-serialisable
    dict, recorded verbatim in the leaderboard's `protocol` column;
  * `run(context)` yields `Measurement`s. The `EvaluationContext` holds the
    loaded module and gives the datasets, cached features of any output and
    the module itself for fine-tuning; hyperparameters are selected on data
    carved from the training data, never on the test data;
  * `requires` names what the module must offer ("features": a feature
    vector, the default; "logits": a classifier head; "fine_tuning":
    trainable variables and `__call__(..., training=)`);
    the harness skips an evaluator whose requirement is missing with a
    one-line note instead of failing;
  * the class attribute `name` is the registry name; the harness builds the
    leaderboard rows (provenance) from the measurements, in one place;
  * the class attribute `version` (1 unless an evaluator bumps it) goes into
    every row's protocol fingerprint (benchmark.results.fingerprint): bump
    it when a change to the evaluator's code changes its numbers, so old
    and new rows are not ranked together.

`FeatureEvaluator` is the thin subclass for protocols on frozen features of a
dataset's train and test splits (linear probe, kNN, class separation): it
extracts (or reads from the cache) both splits and calls `evaluate(train,
test, metric)`.
"""

import dataclasses
import inspect

from benchmark.data.transfer import dataset_metric
from zoo.registry import Registry

EVALUATORS = Registry("evaluator")

# Requirements an evaluator may declare, and how the module is checked.
REQUIREMENTS = ("features", "logits", "fine_tuning")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One number an evaluator measured, and the data it was measured on.

    Attributes:
      metric: what `value` is ("accuracy", "r2", "auc_edema").
      value: the measured number (accuracies as fractions in [0, 1]).
      selected: hyperparameters chosen on validation data (e.g. {"l2": 1e-3}).
      dataset: the dataset name recorded in the leaderboard.
      split: "train->test" for trained protocols, the evaluated split otherwise.
      train_size: images the protocol trained or fitted on (None: none).
      test_size: images the value was measured on.
      predictions: per-example outcomes behind `value`, {example id:
        [predicted label, true label]} (results bundles store them and
        paired gates compare them; {} when the protocol has none).
    """

    metric: str
    value: float
    selected: dict = dataclasses.field(default_factory=dict)
    dataset: str = ""
    split: str = ""
    train_size: int | None = None
    test_size: int | None = None
    predictions: dict = dataclasses.field(default_factory=dict)


class Evaluator:
    """Base class of every evaluator (see the module docstring for the contract).

    Attributes:
      name: registry name of the evaluator.
      requires: what the module must offer (a subset of REQUIREMENTS).
    """

    name = None
    version = 1
    requires = ("features",)

    def protocol(self):
        """Returns {"evaluator": name, <each constructor argument>: value, ...}
        without `data` (the row's dataset column). Tuples become lists so the
        dict round-trips through JSON unchanged."""
        params = inspect.signature(type(self).__init__).parameters
        config = {"evaluator": self.name}
        for key in params:
            if key not in ("self", "data"):
                config[key] = jsonable(getattr(self, key))
        return config

    def missing(self, module):
        """Returns why `module` cannot be evaluated here, or None."""
        if "features" in self.requires and not module.has_features:
            return "the module has no feature-vector function (only 'logits')"
        if "logits" in self.requires and not module.has_logits:
            return "the module has no 'logits' signature (classifier head)"
        if "fine_tuning" in self.requires:
            problem = module.fine_tuning_problem()
            if problem:
                return f"the module cannot be fine-tuned: {problem}"
        return None

    def data_specs(self):
        """Returns the dataset specs `run` will read (loaded and checked by the
        harness before any evaluator runs)."""
        data = getattr(self, "data", None)
        return [data] if data else []

    def run(self, context):
        """Yields Measurements of the protocol for `context.module`."""
        raise NotImplementedError


class FeatureEvaluator(Evaluator):
    """An evaluator of frozen features of a dataset's train and test splits.

    Subclasses take `data` (a dataset spec) and `max_per_class` and implement
    `evaluate(train, test, metric)`, yielding Measurements of metric and
    value; `run` adds the dataset, split and sizes. The accuracy `metric` is
    the dataset's (mean per-class accuracy for Pets and Flowers, top-1
    otherwise).
    """

    def run(self, context):
        dataset = context.dataset(self.data)
        train_split, test_split = dataset.train_split, dataset.test_split
        if not train_split or not test_split:
            raise ValueError(
                f"{dataset.name} needs a train and a test split for {self.name}"
            )
        train = context.features(dataset, train_split, max_per_class=self.max_per_class)
        test = context.features(dataset, test_split, max_per_class=self.max_per_class)
        for m in self.evaluate(train, test, dataset_metric(dataset)):
            yield dataclasses.replace(
                m,
                dataset=m.dataset or dataset.name,
                split=m.split or f"{train_split}->{test_split}",
                train_size=len(train) if m.train_size is None else m.train_size,
                test_size=len(test) if m.test_size is None else m.test_size,
            )

    def evaluate(self, train, test, metric="top1"):
        """Yields Measurements of the protocol on (train, test) FeatureSets."""
        raise NotImplementedError


def per_example(ids, predictions, labels):
    """Returns {example id: [predicted label, true label]}: the per-example
    outcomes results bundles store and paired gates compare."""
    return {
        (i.decode() if isinstance(i, bytes) else str(i)): [int(p), int(y)]
        for i, p, y in zip(ids, predictions, labels)
    }


def jsonable(value):
    """Returns `value` with tuples turned into lists (JSON has no tuples)."""
    if isinstance(value, (tuple, list)):
        return [jsonable(v) for v in value]
    return value


def check_positive(**values):
    """Raises ValueError naming the first value that is not a positive int
    (None is allowed: "not set")."""
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
