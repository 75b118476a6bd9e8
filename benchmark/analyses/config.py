"""Analysis configs: what zoo-analyze runs, as Python files with
`get_config()` (benchmark/analyses/configs/NAME.py, or any .py file).

An AnalysisConfig names the dataset spec and split, the analyses with their
settings, and the sizes. `--set=KEY=VALUE` overrides a field
(`max_per_class=50`, `split=test`) or an analysis setting
(`cka.batch_size=1500`, `cka.augment=true`); values are read as JSON when
they parse.
"""

import dataclasses

from benchmark.analyses import AnalysisError, create_analysis, list_analyses
from benchmark.analyses.configs import CONFIG_DIR


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
    from zoo.config_files import load_config_file

    return load_config_file(
        name_or_path, CONFIG_DIR, AnalysisConfig, "analysis config", AnalysisError
    )


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
