"""Benchmark configs: which evaluators run on which data, with which settings.

A config is a Python file (benchmark/configs/NAME.py, or any .py path) whose
`get_config()` returns a `BenchmarkConfig`; its docstring gives the command and
the expected result. Command-line overrides (`zoo-benchmark --set=KEY=VALUE`,
repeatable) change it before anything runs:

  * `FIELD=VALUE` sets a config field: `max_per_class=50`,
    `datasets=cifar10,tfds:cifar100`, `batch_size=64`;
  * `EVALUATOR.ARG=VALUE` sets a constructor argument of every evaluation of
    that evaluator: `knn.weighted=true`, `fine_tune.steps=200`,
    `chexpert.data=chexpert:/data/chexpert`.

VALUE is read as JSON when it parses (numbers, true/false, null, lists such as
`[0.01,0.1]`), otherwise as a string; a comma-separated VALUE of `datasets`
and of tuple-valued arguments becomes a list.
"""

import dataclasses
import inspect
import os

from benchmark.evaluators import EVALUATORS, create_evaluator
from zoo.config_files import load_config_file, parse_value


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One evaluator of a config and its settings.

    Args:
      evaluator: the registered evaluator name.
      data: the dataset spec it reads; None means the evaluator's default
        data when it has one (imagenet_ood: imagenet2012), else one run on
        each of the config's `datasets`.
      settings: the evaluator's other keyword arguments.
    """

    evaluator: str
    data: str | None = None
    settings: dict = dataclasses.field(default_factory=dict)


def evaluation(evaluator, data=None, **settings):
    """Returns Evaluation(evaluator, data, settings): the config files' shorthand."""
    return Evaluation(evaluator, data, settings)


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What one benchmark run measures.

    Args:
      name: the config's name (recorded in every row's protocol).
      evaluations: the Evaluations, run in order.
      datasets: the dataset specs of evaluations whose data is None.
      max_per_class: default cap on images per class and split, given to
        every evaluator that takes `max_per_class` and sets none itself.
      batch_size: images per forward pass of the feature extraction.
      time_limit_s: the sandboxed run's wall-time bound, s; None: the
        stated bound per image, `time_limit`.
      seconds_per_image: with base_seconds, the bound per image read.
      base_seconds: start-up allowance of that bound, s.
    """

    name: str
    evaluations: tuple
    datasets: tuple = ()
    max_per_class: int | None = None
    batch_size: int = 128
    time_limit_s: float | None = None
    seconds_per_image: float = 1.0
    base_seconds: float = 600.0

    def time_limit(self, images):
        """Returns the wall-time bound, s, of a sandboxed run that reads
        `images` images in all: `time_limit_s` when the config sets one,
        else base_seconds + seconds_per_image * images (a module that takes
        longer is stopped with one line; --sandbox_time_s overrides)."""
        if self.time_limit_s:
            return float(self.time_limit_s)
        return self.base_seconds + self.seconds_per_image * images

    def replace(self, **changes):
        """Returns a copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def evaluators(self, only=None):
        """Returns the built evaluators in run order, each Evaluation expanded
        over `datasets` when its data is None; `only` keeps those names.

        Raises ValueError for unknown names, bad settings, or an evaluation
        without data when the config has no datasets.
        """
        if only:
            unknown = sorted(set(only) - {e.evaluator for e in self.evaluations})
            if unknown:
                present = ", ".join(
                    dict.fromkeys(e.evaluator for e in self.evaluations)
                )
                raise ValueError(
                    f"config {self.name} has no evaluation {', '.join(unknown)}; "
                    f"it runs {present}"
                )
        built = []
        for entry in self.evaluations:
            if only and entry.evaluator not in only:
                continue
            data = entry.data
            if data is None:  # The evaluator's own default data, if it has one.
                data = _defaults(entry.evaluator).get("data")
            specs = [data] if data is not None else list(self.datasets)
            if not specs:
                raise ValueError(
                    f"config {self.name}: {entry.evaluator} runs on the config's "
                    "datasets and there are none; pass --datasets=SPEC[,SPEC...]"
                )
            for spec in specs:
                built.append(self._build(entry, spec))
        return built

    def _build(self, entry, spec):
        """Returns the evaluator of one (Evaluation, dataset spec)."""
        settings = dict(entry.settings)
        accepted = _arguments(entry.evaluator)
        if "max_per_class" in accepted and settings.get("max_per_class") is None:
            settings["max_per_class"] = self.max_per_class
        if "data" in accepted:
            settings["data"] = spec
        try:
            return create_evaluator(entry.evaluator, **settings)
        except TypeError as e:
            raise ValueError(
                f"config {self.name}: {entry.evaluator} {_type_error(e, accepted)}"
            ) from None


def _defaults(name):
    """Returns {argument: default} of evaluator `name`'s constructor."""
    params = inspect.signature(EVALUATORS.get(name).__init__).parameters
    return {k: p.default for k, p in params.items() if k != "self"}


def _arguments(name):
    """Returns the keyword arguments of evaluator `name`'s constructor."""
    params = inspect.signature(EVALUATORS.get(name).__init__).parameters
    return [p for p in params if p != "self"]


def _type_error(error, accepted):
    """Returns a one-line explanation of a constructor TypeError."""
    text = str(error)
    if "unexpected keyword argument" in text:
        bad = text.split("'")[1] if "'" in text else text
        return f"takes no setting '{bad}'; its settings are {', '.join(accepted)}"
    return f"settings are invalid ({text})"


def load_config(name_or_path):
    """Returns the BenchmarkConfig of a config named in benchmark/configs or a
    .py file defining get_config() (zoo.config_files.load_config_file)."""
    folder = os.path.dirname(os.path.abspath(__file__))
    return load_config_file(name_or_path, folder, BenchmarkConfig, "benchmark config")


def apply_overrides(config, overrides):
    """Returns `config` with each "KEY=VALUE" of `overrides` applied (module
    docstring); raises ValueError naming a malformed or unknown key."""
    for item in overrides or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(
                f"override {item!r} is not KEY=VALUE (e.g. max_per_class=50 or "
                "knn.weighted=true)"
            )
        if "." in key:
            config = _override_evaluator(config, key, text)
        else:
            config = _override_field(config, key, text)
    return config


def _override_field(config, key, text):
    fields = {f.name: f for f in dataclasses.fields(BenchmarkConfig)}
    if key not in fields or key in ("name", "evaluations"):
        settable = [f for f in fields if f not in ("name", "evaluations")]
        raise ValueError(
            f"unknown config field '{key}'; set one of {', '.join(settable)} or "
            "EVALUATOR.ARG"
        )
    value = parse_value(text)
    if key == "datasets":
        value = tuple(str(v) for v in _as_list(value))
    elif key == "batch_size" and (not isinstance(value, int) or value < 1):
        raise ValueError(f"batch_size must be a positive integer, got {text!r}")
    elif (
        key == "max_per_class"
        and value is not None
        and (not isinstance(value, int) or isinstance(value, bool) or value < 1)
    ):
        raise ValueError(f"max_per_class must be a positive integer, got {text!r}")
    return config.replace(**{key: value})


def _override_evaluator(config, key, text):
    name, _, arg = key.partition(".")
    if name not in EVALUATORS:
        raise ValueError(
            f"override {key}: unknown evaluator '{name}'; choose one of "
            f"{', '.join(EVALUATORS.names())}"
        )
    accepted = _arguments(name)
    if arg not in accepted:
        raise ValueError(
            f"override {key}: {name} takes no setting '{arg}'; its settings are "
            f"{', '.join(accepted)}"
        )
    if not any(e.evaluator == name for e in config.evaluations):
        raise ValueError(f"override {key}: config {config.name} does not run {name}")
    value = parse_value(text)
    if isinstance(_defaults(name)[arg], tuple):
        value = tuple(_as_list(value))
    entries = []
    for entry in config.evaluations:
        if entry.evaluator == name:
            if arg == "data":
                entry = dataclasses.replace(entry, data=value)
            else:
                entry = dataclasses.replace(
                    entry, settings={**entry.settings, arg: value}
                )
        entries.append(entry)
    return config.replace(evaluations=tuple(entries))


def _as_list(value):
    """Returns a list from a list, a comma-separated string (each item read
    like a value: "1,3" gives [1, 3]) or a scalar."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [parse_value(v.strip()) for v in value.split(",") if v.strip()]
    return [value]
