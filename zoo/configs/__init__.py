"""Experiment configs: one Python file per experiment, each with `get_config()`.

Each file's docstring gives its command and the result to expect.
"""

import os

from zoo.config import TrainConfig
from zoo.config_files import config_names, load_config_file


def load_config(name_or_path):
    """Returns the TrainConfig of a config named in zoo/configs or a .py path."""
    folder = os.path.dirname(__file__)
    return load_config_file(name_or_path, folder, TrainConfig, "config")


def list_configs():
    """Returns the names of the configs shipped in zoo/configs."""
    return config_names(os.path.dirname(__file__))
