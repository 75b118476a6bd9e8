"""Benchmark configs: one Python file per benchmark, each with `get_config()`.

Each file's docstring gives its command and the result to expect; see
`benchmark.config` for the config type and the override syntax.
"""

import os


def config_names(folder):
    """Returns the names of the config files (NAME.py, not _*.py) in `folder`."""
    names = [f[:-3] for f in os.listdir(folder) if f.endswith(".py")]
    return sorted(n for n in names if not n.startswith("_"))


def list_configs():
    """Returns the names of the configs shipped here (no TensorFlow import)."""
    return config_names(os.path.dirname(__file__))
