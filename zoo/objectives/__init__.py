"""Objective registry: one file per objective, registered by decorator."""

from zoo.objectives.base import Objective, ObjectiveError
from zoo.registry import Registry

OBJECTIVES = Registry("objective")


def create_objective(name, **hparams):
    """Returns the objective `name` built with `hparams` (its defaults otherwise).

    Raises RegistryError for an unknown name and ObjectiveError for an unknown
    or out-of-range hyperparameter.
    """
    factory = OBJECTIVES.get(name)
    try:
        return factory(**hparams)
    except TypeError as e:
        raise ObjectiveError(f"{name}: bad hyperparameters {hparams}: {e}") from None


def list_objectives(pattern="*"):
    """Returns the registered objective names matching `pattern`."""
    return OBJECTIVES.names(pattern)


# Imported for their registration side effect.
from zoo.objectives import (  # noqa: E402,F401
    cosine_softmax,
    dropout,
    extra_final_layer_l2,
    focal,
    hyperspherical_prototypes,
    label_smoothing,
    logit_normalization,
    logit_penalty,
    sigmoid,
    softmax,
    squared_error,
)

__all__ = [
    "OBJECTIVES",
    "Objective",
    "ObjectiveError",
    "create_objective",
    "list_objectives",
]
