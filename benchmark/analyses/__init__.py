"""Representation analyses registry: one file per analysis, registered by
decorator (the contract: benchmark/analyses/base.py)."""

from benchmark.analyses.base import Analysis, AnalysisError, AnalysisResult
from zoo.registry import Registry

ANALYSES = Registry("analysis")


def create_analysis(name, **settings):
    """Returns the analysis `name` built with `settings` (its defaults
    otherwise); raises RegistryError or AnalysisError, one line."""
    factory = ANALYSES.get(name)
    try:
        return factory(**settings)
    except TypeError as e:
        raise AnalysisError(f"{name}: bad settings {settings}: {e}") from None


def list_analyses(pattern="*"):
    """Returns the registered analysis names matching `pattern`."""
    return ANALYSES.names(pattern)


# Imported for their registration side effect.
from benchmark.analyses import (  # noqa: E402,F401
    cka,
    class_separation,
    neural_collapse,
    sparsity,
)

__all__ = [
    "ANALYSES",
    "Analysis",
    "AnalysisError",
    "AnalysisResult",
    "create_analysis",
    "list_analyses",
]
