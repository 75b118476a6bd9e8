"""The fetch flags of every entry point that fetches modules (absl lives in
entry points and in these flag helpers only)."""

from absl import flags

from export.fetch import (
    DEADLINE_ENV,
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_MODULE_MB,
    MAX_MODULE_MB_ENV,
)


def define_fetch_flags():
    """Defines --max_module_mb and --download_deadline_s; pass their values
    to `export.fetch.set_limits` (or a RunRequest)."""
    flags.DEFINE_float(
        "max_module_mb",
        None,
        "Largest module download and extracted size, MiB (default "
        f"${MAX_MODULE_MB_ENV} or {DEFAULT_MAX_MODULE_MB}).",
    )
    flags.DEFINE_float(
        "download_deadline_s",
        None,
        "Longest a module download may take, s (default "
        f"${DEADLINE_ENV} or {DEFAULT_DEADLINE_S:g}).",
    )
