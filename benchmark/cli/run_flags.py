"""The run flags of zoo-benchmark and zoo-submit, from one table: an option
added to FLAG_SPECS (and its RunRequest field) is accepted by both, and
`from_flags` turns parsed flags into the one RunRequest of the run."""

import dataclasses

from absl import flags

from benchmark.configs import list_configs
from benchmark.runner.request import SANDBOX_MODES, ModuleOptions, RunRequest
from export.flags import define_fetch_flags

# The flags of every entry point that starts a run: (name, kind, help).
# Their defaults are RunRequest's; `from_flags` reads each into its field.
FLAG_SPECS = (
    (
        "module",
        "string",
        "Module handle: SavedModel dir, .keras or .h5 file, .tar.gz, catalog name "
        "or URL.",
    ),
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
    (
        "input_normalization",
        "string",
        "Override the input normalisation the module expects: unit, minus_one_one, "
        "imagenet_mean_std, 0_255 or uint8 (default: what the module declares).",
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
        "Run the module in a sandboxed child (benchmark.modules.sandbox: no network, "
        "a file system holding only what the run needs, limits): auto uses one when "
        "bwrap or unshare works, require fails without one, off runs in this process.",
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
    (
        "name",
        "string",
        "Display name of the module in the rows and the leaderboard's views "
        "(default: its objective, from its metadata).",
    ),
)
OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(ModuleOptions))
_FIELD_OF_FLAG = {"set": "overrides"}


def _default(name):
    field = _FIELD_OF_FLAG.get(name, name)
    if field in OPTION_FIELDS:
        return getattr(ModuleOptions(), field)
    value = getattr(RunRequest(), field)
    return list(value) if isinstance(value, tuple) else value


def define_flags(defaults=None, without=(), helps=None):
    """Defines the run flags (FLAG_SPECS, plus --request and the fetch
    limits) in absl; for one entry point, `defaults` and `helps` override
    some defaults and help texts, and the flags in `without` are left out
    (their request fields keep RunRequest's defaults)."""
    defaults, helps = defaults or {}, helps or {}
    for name, kind, help_text in FLAG_SPECS:
        if name in without:
            continue
        default = defaults.get(name, _default(name))
        help_text = helps.get(name, help_text)
        if name == "config":
            help_text = f"Benchmark config: one of {', '.join(list_configs())}, or a "
            help_text += ".py file defining get_config()."
        if kind == "enum":
            flags.DEFINE_enum(name, default, list(SANDBOX_MODES), help_text)
        else:
            getattr(flags, f"DEFINE_{kind}")(name, default, help_text)
    flags.DEFINE_string(
        "request",
        None,
        "Run the request in this JSON file (benchmark.runner.request) instead of the "
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
        if name not in values:
            continue  # an entry point without this flag
        value = getattr(values, name)
        field = _FIELD_OF_FLAG.get(name, name)
        if isinstance(value, list):
            value = tuple(value)
        (options if field in OPTION_FIELDS else fields)[field] = value
    for name in ("max_module_mb", "download_deadline_s"):
        fields[name] = getattr(values, name)
    for name in ("cache_dir", "leaderboard", "bundle"):
        if name in fields:
            fields[name] = fields[name] or None
    return RunRequest(options=ModuleOptions(**options), **fields)
