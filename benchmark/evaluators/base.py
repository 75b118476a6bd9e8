"""The evaluator contract, its result type and the evaluator registry."""

import dataclasses
import inspect

from zoo.registry import Registry

EVALUATORS = Registry("evaluator")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One number an evaluator measured.

    Attributes:
      metric: what `value` is ("accuracy", "r2").
      value: the measured number (accuracies as fractions in [0, 1]).
      selected: hyperparameters chosen on validation data (e.g. {"l2": 1e-3}).
    """

    metric: str
    value: float
    selected: dict = dataclasses.field(default_factory=dict)


class Evaluator:
    """Base class of the evaluators: one protocol applied to frozen features.

    Contract (big_vision style):
      * the constructor takes keyword config only and stores one attribute per
        argument, under the argument's name;
      * `protocol(metric)` returns every setting as a JSON-serialisable dict,
        recorded verbatim in the leaderboard's `protocol` column;
      * `run(train, test, metric)` yields `Measurement`s; any hyperparameter
        selection happens on a split of `train` only, never on `test`;
      * the class attribute `name` is the registry name.

    Attributes:
      name: registry name of the evaluator.
      uses_metric: whether `run`'s `metric` (top1 / mean_per_class) matters.
    """

    name = None
    uses_metric = True

    def protocol(self, metric="top1"):
        """Returns {"evaluator": name, <each constructor argument>: value, ...}.

        The accuracy `metric` is included when the evaluator uses it. Tuples
        become lists so the dict round-trips through JSON unchanged.
        """
        params = inspect.signature(type(self).__init__).parameters
        config = {"evaluator": self.name}
        for key in params:
            if key != "self":
                config[key] = _jsonable(getattr(self, key))
        if self.uses_metric:
            config["metric"] = metric
        return config

    def run(self, train, test, metric="top1"):
        """Yields Measurements of the protocol on (train, test) FeatureSets."""
        raise NotImplementedError


def _jsonable(value):
    """Returns `value` with tuples turned into lists (JSON has no tuples)."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    return value
