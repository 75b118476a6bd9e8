"""Benchmark configs: one Python file per benchmark, each with `get_config()`.

Each file's docstring gives its command and the result to expect; see
`benchmark.config` for the config type and the override syntax.
"""

import os


def list_configs():
    """Returns the names of the configs shipped here (no TensorFlow import)."""
    here = os.path.dirname(__file__)
    return sorted(
        f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_")
    )
