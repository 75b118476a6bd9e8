"""The run request: one frozen, JSON-serialisable description of a benchmark
run, and the one place its command-line flags are defined.

Every way of starting a run builds exactly one `RunRequest`: zoo-benchmark
and zoo-submit from their flags (benchmark.cli.run_flags: one table, so an
option added there is accepted by both), `benchmark.evaluate` from its arguments,
the sandboxed child, plan shards and verification re-runs from a JSON file
(`--request=FILE`), and a results bundle's manifest stores the request its
rows came from. Nothing rebuilds a command line from flags.

Module options (`ModuleOptions`) override what a module declares about its
input contract; a new module convention adds one field there and one flag
spec in benchmark.cli.run_flags, and reaches every entry point, the bundle
and verification.
"""

import dataclasses
import json

from zoo.files import write_atomic

REQUEST_VERSION = 1
SANDBOX_MODES = ("auto", "require", "off")


@dataclasses.dataclass(frozen=True)
class ModuleOptions:
    """Overrides of a module's declared input contract (None: as declared).

    Attributes:
      image_size: input height and width, px.
      signature: the signature to call instead of `__call__`.
      output: the entry to read of a signature that returns a dict.
      value_range: the pixel range the module expects, "low,high".
      input_normalization: a name of export/normalization.py.
    """

    image_size: int | None = None
    signature: str | None = None
    output: str | None = None
    value_range: str | None = None
    input_normalization: str | None = None

    def load_kwargs(self):
        """Returns the keyword arguments of benchmark.modules.loading.load_module;
        ValueError names an option that cannot work."""
        from benchmark.modules.loading import parse_value_range
        from export import normalization

        normalization.check_options(self.input_normalization, self.value_range)
        return dict(
            image_size=self.image_size,
            signature=self.signature,
            output=self.output,
            value_range=parse_value_range(self.value_range),
            input_normalization=self.input_normalization,
        )


@dataclasses.dataclass(frozen=True)
class RunRequest:
    """One benchmark run (see the module docstring).

    Attributes:
      module: the module handle (folder, archive, URL, catalog name).
      options: ModuleOptions.
      config: a config name or .py file.
      overrides: `--set` items, KEY=VALUE, applied in order.
      datasets, evaluations: the config's datasets / the evaluators to run.
      max_per_class, batch_size: shorthands for those overrides.
      data_dir, cache_dir: the TFDS data folder and the feature cache.
      leaderboard, bundle: where rows go (None: nowhere).
      strategy: the tf.distribute strategy for fine-tuning.
      sandbox: auto, require or off; sandbox_*: its limits.
      max_module_mb, download_deadline_s: fetch limits.
      record_handle: the handle written in rows (default `module`).
      name: the module's display name in rows and views (default: none;
        views show the objective).
    """

    module: str | None = None
    options: ModuleOptions = ModuleOptions()
    config: str = "smoke"
    overrides: tuple = ()
    datasets: tuple | None = None
    evaluations: tuple | None = None
    max_per_class: int | None = None
    batch_size: int | None = None
    data_dir: str | None = None
    cache_dir: str | None = "runs/feature_cache"
    leaderboard: str | None = "runs/leaderboard.csv"
    bundle: str | None = None
    strategy: str = "default"
    sandbox: str = "auto"
    sandbox_memory_gb: float | None = None
    sandbox_file_gb: float | None = None
    sandbox_time_s: float | None = None
    max_module_mb: float | None = None
    download_deadline_s: float | None = None
    record_handle: str | None = None
    name: str | None = None

    def replace(self, **changes):
        """Returns a copy with `changes`; ModuleOptions fields are accepted
        by name too (image_size=..., output=...)."""
        names = {f.name for f in dataclasses.fields(ModuleOptions)}
        options = {k: changes.pop(k) for k in list(changes) if k in names}
        if options:
            changes["options"] = dataclasses.replace(self.options, **options)
        return dataclasses.replace(self, **changes)

    @property
    def handle(self):
        """Returns the handle rows record."""
        return self.record_handle or self.module

    def config_overrides(self):
        """Returns the config overrides, in order: `overrides`, then the
        datasets, max_per_class and batch_size shorthands."""
        items = list(self.overrides)
        if self.datasets:
            items.append("datasets=" + ",".join(self.datasets))
        if self.max_per_class is not None:
            items.append(f"max_per_class={self.max_per_class}")
        if self.batch_size is not None:
            items.append(f"batch_size={self.batch_size}")
        return items

    def load_config(self):
        """Returns the BenchmarkConfig with every override applied."""
        from benchmark.configs.config import apply_overrides, load_config

        return apply_overrides(load_config(self.config), self.config_overrides())

    def to_dict(self):
        """Returns the request as JSON-able data (with its version)."""
        return {"request_version": REQUEST_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data):
        """Returns the request `to_dict` wrote; ValueError names a field
        this version does not know."""
        data = dict(data)
        version = data.pop("request_version", REQUEST_VERSION)
        if version != REQUEST_VERSION:
            raise ValueError(
                f"run request version {version} is not {REQUEST_VERSION}; rerun "
                "it with the zoo version that wrote it"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"run request has unknown fields: {', '.join(unknown)}")
        options = ModuleOptions(**(data.pop("options", None) or {}))
        for name in ("overrides", "datasets", "evaluations"):
            if data.get(name) is not None:
                data[name] = tuple(data[name])
        return cls(options=options, **data)

    def write(self, path):
        """Writes the request as JSON to `path` (atomically)."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1, sort_keys=True))

    @classmethod
    def read(cls, path):
        """Returns the request in the JSON file `path`."""
        with open(path, encoding="utf-8") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not a run request ({e})") from None
        return cls.from_dict(data)
