"""Matrix configs: a whole study per Python file (pipeline/configs/NAME.py,
or any .py path) whose `get_config()` returns a pipeline.matrix.MatrixConfig:
the training config and its overrides, the objectives and seeds, and what
each trained module is then scored on (a benchmark config and an analysis
config built from the matrix's datasets). Each file's docstring gives its
command and the result to expect.

`zoo-matrix --config=NAME` takes a matrix config when NAME is one (or a .py
file defining one), else a training config of zoo/configs trained over
--objectives and --seeds.
"""

import os

from zoo.config_files import config_module, config_names, load_config_file

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))


def list_matrix_configs():
    """Returns the names of the matrix configs shipped here."""
    return config_names(CONFIG_DIR)


def is_matrix_config(name_or_path):
    """Returns whether `name_or_path` names a matrix config: a shipped name,
    or a .py file whose get_config() returns a MatrixConfig."""
    if name_or_path in list_matrix_configs():
        return True
    if name_or_path.endswith(".py") and os.path.isfile(name_or_path):
        from pipeline.matrix import MatrixConfig

        return isinstance(config_module(name_or_path).get_config(), MatrixConfig)
    return False


def load_matrix_config(name_or_path):
    """Returns the MatrixConfig of a shipped name or a .py file."""
    from pipeline.matrix import MatrixConfig

    return load_config_file(name_or_path, CONFIG_DIR, MatrixConfig, "matrix config")
