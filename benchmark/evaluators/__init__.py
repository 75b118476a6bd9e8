"""The evaluators, one per file; importing this registers all of them.

`EVALUATORS` is the one registry: frozen-feature protocols (linear_probe,
knn, few_shot, class_separation, chexpert) and those that use the module itself
(fine_tune, imagenet_ood, calibration) share the contract of
`benchmark.evaluators.base.Evaluator`.
"""

from benchmark.evaluators import (  # noqa: F401 - registration
    calibration,
    chexpert,
    class_separation,
    few_shot,
    fine_tune,
    imagenet_ood,
    knn,
    linear_probe,
)
from benchmark.evaluators.base import (
    EVALUATORS,
    Evaluator,
    FeatureEvaluator,
    Measurement,
)

__all__ = [
    "EVALUATORS",
    "Evaluator",
    "FeatureEvaluator",
    "Measurement",
    "create_evaluator",
    "list_evaluators",
]


def create_evaluator(name, **config):
    """Returns the evaluator registered as `name`, built from keyword config."""
    return EVALUATORS.create(name, **config)


def list_evaluators(pattern="*"):
    """Returns the sorted names of the registered evaluators matching `pattern`."""
    return EVALUATORS.names(pattern)
