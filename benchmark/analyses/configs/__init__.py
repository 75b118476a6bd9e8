"""Analysis configs: one Python file per analysis run, each with
`get_config()` returning a benchmark.analyses.config.AnalysisConfig; each
docstring gives the command and the result to expect."""

import os

from zoo.config_files import config_names

CONFIG_DIR = os.path.dirname(__file__)


def list_analysis_configs():
    """Returns the names of the shipped analysis configs (no TensorFlow import)."""
    return config_names(CONFIG_DIR)
