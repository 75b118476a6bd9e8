"""Benchmark configs: one Python file per benchmark, each with `get_config()`.

Each file's docstring gives its command and the result to expect; see
`benchmark.configs.config` for the config type and the override syntax.
"""

import os

from zoo.config_files import config_names


def list_configs():
    """Returns the names of the configs shipped here (no TensorFlow import)."""
    return config_names(os.path.dirname(__file__))
