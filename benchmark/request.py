"""The run request: one frozen, JSON-serialisable description of a benchmark
run, and the one place its command-line flags are defined.

Every way of starting a run builds exactly one `RunRequest`: zoo-benchmark
and zoo-submit from their flags (`define_flags` + `from_flags`, so an option
added here is accepted by both), `benchmark.evaluate` from its arguments,
the sandboxed child, plan shards and verification re-runs from a JSON file
(`--request=FILE`), and a results bundle's manifest stores the request its
rows came from. Nothing rebuilds a command line from flags.

Module options (`ModuleOptions`) override what a module declares about its
input contract; a new module convention adds one field there and one flag
spec below, and reaches every entry point, the bundle and verification.
"""

import dataclasses
import json

from zoo.files import write_atomic

REQUEST_VERSION = 1


@dataclasses.dataclass(frozen=True)
class ModuleOptions:
    """Overrides of a module's declared input contract (None: as declared).

    Attributes:
      image_size: input height and width, px.
      signature: the signature to call instead of `__call__`.
      output: the entry to read of a signature that returns a dict.
      value_range: the pixel range the module expects, "low,high".
    """

    image_size: int | None = None
    signature: str | None = None
    output: str | None = None
    value_range: str | None = None

    def load_kwargs(self):
        """Returns the keyword arguments of benchmark.modules.load_module."""
        from benchmark.modules import parse_value_range

        return dict(
            image_size=self.image_size,
            signature=self.signature,
            output=self.output,
            value_range=parse_value_range(self.value_range),
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
        from benchmark.config import apply_overrides, load_config

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


# The flags of every entry point that starts a run: (name, kind, help).
# Their defaults are RunRequest's; `from_flags` reads each into its field.
FLAG_SPECS = (
    ("module", "string", "Module handle: SavedModel dir, .tar.gz, catalog or URL."),
    ("config", "string", "Benchmark config name, or a .py file defining get_config()."),
    (
        "set",
        "multi_string",
        "Config override KEY=VALUE (repeatable): a config field (max_per_class=50) "
        "or EVALUATOR.ARG (knn.weighted=true, chexpert.data=chexpert:DIR).",
    ),
    (
        "datasets",
        "list",
        "Dataset specs of the config's per-dataset evaluations (transfer name, "
        "tfds:NAME, image-folder path, ...); same as --set=datasets=...",
    ),
    ("evaluations", "list", "Run only these evaluators of the config."),
    ("max_per_class", "integer", "Cap on images per class and split."),
    ("batch_size", "integer", "Images per forward pass (--set=batch_size)."),
    ("image_size", "integer", "Override the module's input size."),
    ("signature", "string", "Override the signature (default: __call__)."),
    ("output", "string", "Pick this entry of a signature that returns a dict."),
    (
        "value_range",
        "string",
        "Override the pixel range the module expects, 'low,high' (0,1 / 0,255 / "
        "-1,1); images in [0, 1] are rescaled to it.",
    ),
    ("data_dir", "string", "Prepared TFDS data directory."),
    ("cache_dir", "string", "Feature cache directory."),
    ("leaderboard", "string", "Leaderboard CSV to append to."),
    (
        "bundle",
        "string",
        "Also write a results bundle (rows, per-example predictions, manifest with "
        "this run's request, attestation) to this folder.",
    ),
    ("strategy", "string", "tf.distribute strategy for fine-tuning (zoo.distribute)."),
    (
        "sandbox",
        "enum",
        "Run the module in a sandboxed child (benchmark.sandbox: no network, a file "
        "system holding only what the run needs, limits): auto uses one when bwrap "
        "or unshare works, require fails without one, off runs in this process.",
    ),
    (
        "sandbox_memory_gb",
        "float",
        "Sandbox address-space limit, GiB (default 80% of RAM).",
    ),
    ("sandbox_file_gb", "float", "Sandbox limit on any file's size, GiB."),
    (
        "sandbox_time_s",
        "float",
        "Sandbox wall-time limit, s (default: the config's bound, e.g. 600 s for "
        "smoke, else 600 s plus 1 s per image read).",
    ),
    (
        "record_handle",
        "string",
        "Handle written in the rows (default: --module).",
    ),
)
OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(ModuleOptions))
_FIELD_OF_FLAG = {"set": "overrides"}
_SANDBOX_MODES = ("auto", "require", "off")


def _default(name):
    field = _FIELD_OF_FLAG.get(name, name)
    if field in OPTION_FIELDS:
        return getattr(ModuleOptions(), field)
    value = getattr(RunRequest(), field)
    return list(value) if isinstance(value, tuple) else value


def define_flags(defaults=None):
    """Defines the run flags (FLAG_SPECS, plus --request and the fetch
    limits) in absl; `defaults` overrides some defaults for one entry point."""
    from absl import flags

    from benchmark.configs import list_configs
    from export.fetch import define_flags as define_fetch_flags

    defaults = defaults or {}
    for name, kind, help_text in FLAG_SPECS:
        default = defaults.get(name, _default(name))
        if name == "config":
            help_text = f"Benchmark config: one of {', '.join(list_configs())}, or a "
            help_text += ".py file defining get_config()."
        if kind == "enum":
            flags.DEFINE_enum(name, default, list(_SANDBOX_MODES), help_text)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, help_text)
    flags.DEFINE_string(
        "request",
        None,
        "Run the request in this JSON file (benchmark.request) instead of the "
        "flags above (how sandboxed children, shards and re-runs start).",
    )
    define_fetch_flags()


def from_flags(values):
    """Returns the RunRequest of parsed absl flags `values` (FLAGS): the
    --request file when given, else one built from the run flags."""
    if values.request:
        return RunRequest.read(values.request)
    fields, options = {}, {}
    for name, _, _ in FLAG_SPECS:
        value = getattr(values, name)
        field = _FIELD_OF_FLAG.get(name, name)
        if isinstance(value, list):
            value = tuple(value)
        (options if field in OPTION_FIELDS else fields)[field] = value
    for name in ("max_module_mb", "download_deadline_s"):
        fields[name] = getattr(values, name)
    fields["cache_dir"] = fields["cache_dir"] or None
    fields["leaderboard"] = fields["leaderboard"] or None
    fields["bundle"] = fields["bundle"] or None
    return RunRequest(options=ModuleOptions(**options), **fields)
