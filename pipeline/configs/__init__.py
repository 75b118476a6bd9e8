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

import importlib.util
import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))


def list_matrix_configs():
    """Returns the names of the matrix configs shipped here."""
    return sorted(
        f[:-3]
        for f in os.listdir(CONFIG_DIR)
        if f.endswith(".py") and not f.startswith("_")
    )


def is_matrix_config(name_or_path):
    """Returns whether `name_or_path` names a matrix config: a shipped name,
    or a .py file whose get_config() returns a MatrixConfig."""
    if name_or_path in list_matrix_configs():
        return True
    if name_or_path.endswith(".py") and os.path.isfile(name_or_path):
        from pipeline.matrix import MatrixConfig

        return isinstance(_module(name_or_path).get_config(), MatrixConfig)
    return False


def load_matrix_config(name_or_path):
    """Returns the MatrixConfig of a shipped name or a .py file."""
    from pipeline.matrix import MatrixConfig

    if name_or_path in list_matrix_configs():
        path = os.path.join(CONFIG_DIR, f"{name_or_path}.py")
    elif name_or_path.endswith(".py") and os.path.isfile(name_or_path):
        path = name_or_path
    else:
        raise ValueError(
            f"unknown matrix config '{name_or_path}'; use one of "
            f"{', '.join(list_matrix_configs())} or a .py file"
        )
    config = _module(path).get_config()
    if not isinstance(config, MatrixConfig):
        raise ValueError(f"{path}: get_config() must return a MatrixConfig")
    return config


def _module(path):
    spec = importlib.util.spec_from_file_location("matrix_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
