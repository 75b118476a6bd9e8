"""Evaluators of frozen features; importing this registers all of them."""

from benchmark.evaluators import class_separation, knn, linear_probe
from benchmark.evaluators.base import EVALUATORS, Evaluator, Measurement

__all__ = [
    "EVALUATORS",
    "Evaluator",
    "Measurement",
    "class_separation",
    "create_evaluator",
    "knn",
    "linear_probe",
    "list_evaluators",
]


def create_evaluator(name, **config):
    """Returns the evaluator registered as `name`, built from keyword config."""
    return EVALUATORS.create(name, **config)


def list_evaluators(pattern="*"):
    """Returns the sorted names of the registered evaluators matching `pattern`."""
    return EVALUATORS.names(pattern)
