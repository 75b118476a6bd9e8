"""Analysis configs: what zoo-analyze runs, as Python files with
`get_config()` (benchmark/analyses/configs/NAME.py, or any .py file).

An AnalysisConfig names the dataset spec and split, the analyses with their
settings, and the sizes. `--set=KEY=VALUE` overrides a field
(`max_per_class=50`, `split=test`) or an analysis setting
(`cka.batch_size=1500`, `cka.augment=true`); values are read as JSON when
they parse.
"""

import dataclasses
import importlib.util
import os

from benchmark.analyses import AnalysisError, create_analysis, list_analyses
from benchmark.analyses.configs import CONFIG_DIR, list_analysis_configs


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    name: str
    dataset: str
    split: str
    analyses: dict  # analysis name -> settings
    max_per_class: int | None = None
    batch_size: int = 64

    def build(self, only=None):
        """Returns the analysis objects (only those named in `only`)."""
        names = list(self.analyses)
        if only:
            unknown = [n for n in only if n not in list_analyses()]
            if unknown:
                raise AnalysisError(
                    f"unknown analysis {', '.join(unknown)}; use "
                    f"{', '.join(list_analyses())}"
                )
            names = list(only)
        return [create_analysis(n, **self.analyses.get(n, {})) for n in names]


def load_analysis_config(name_or_path):
    """Returns the AnalysisConfig of a shipped name or a .py file."""
    if name_or_path.endswith(".py"):
        path = name_or_path
        if not os.path.isfile(path):
            raise AnalysisError(f"analysis config file {path} not found")
    elif name_or_path in list_analysis_configs():
        path = os.path.join(CONFIG_DIR, f"{name_or_path}.py")
    else:
        raise AnalysisError(
            f"unknown analysis config '{name_or_path}'; use one of "
            f"{', '.join(list_analysis_configs())} or a .py file"
        )
    spec = importlib.util.spec_from_file_location("analysis_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    if not isinstance(config, AnalysisConfig):
        raise AnalysisError(f"{path}: get_config() must return an AnalysisConfig")
    return config


def apply_analysis_overrides(config, overrides):
    """Returns `config` with each KEY=VALUE of `overrides` applied."""
    from zoo.config_files import parse_value

    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise AnalysisError(f"--set {item!r} is not KEY=VALUE")
        value = parse_value(text)
        if "." in key:
            name, _, setting = key.partition(".")
            if name not in list_analyses():
                raise AnalysisError(
                    f"--set {item}: no analysis {name!r}; use "
                    f"{', '.join(list_analyses())}"
                )
            analyses = {k: dict(v) for k, v in config.analyses.items()}
            analyses.setdefault(name, {})[setting] = value
            config = dataclasses.replace(config, analyses=analyses)
            continue
        fields = {f.name for f in dataclasses.fields(config)} - {"name", "analyses"}
        if key not in fields:
            raise AnalysisError(
                f"--set {item}: no field {key!r}; fields: {', '.join(sorted(fields))}"
            )
        config = dataclasses.replace(config, **{key: value})
    return config
