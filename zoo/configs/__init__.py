"""Experiment configs: one Python file per experiment, each with `get_config()`.

Each file's docstring gives its command and the result to expect.
"""

import importlib
import importlib.util
import os

from zoo.config import TrainConfig


def load_config(name_or_path):
    """Returns the TrainConfig of a config named in zoo/configs or a .py path."""
    if name_or_path.endswith(".py"):
        if not os.path.isfile(name_or_path):
            raise ValueError(f"config file {name_or_path} not found")
        spec = importlib.util.spec_from_file_location("zoo_user_config", name_or_path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(f"zoo.configs.{name_or_path}")
        except ModuleNotFoundError:
            raise ValueError(
                f"unknown config '{name_or_path}'; use one of {list_configs()} "
                "or a path to a .py file defining get_config()"
            ) from None
    config = module.get_config()
    if not isinstance(config, TrainConfig):
        raise ValueError(f"{name_or_path}: get_config() must return a TrainConfig")
    return config


def list_configs():
    """Returns the names of the configs shipped in zoo/configs."""
    here = os.path.dirname(__file__)
    return sorted(
        f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_")
    )
