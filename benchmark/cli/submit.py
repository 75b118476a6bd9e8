"""zoo-submit: benchmark a module with a config and write a results bundle
ready to attach to a leaderboard pull request.

Examples:
  zoo-submit --module=https://example.org/my_module.tar.gz --config=paper \\
      --data_dir=~/tensorflow_datasets --bundle=runs/my_submission
  zoo-submit --module=runs/modules/digits_cos --config=smoke --local \\
      --bundle=runs/my_bundle

The module must be one others can fetch (an http(s)/gs:// URL or a catalog
name): the maintainers re-hash and re-run it (`zoo-leaderboard verify`). A
local folder or archive is refused unless --local, for a bundle only you can
verify. The run is zoo-benchmark's: the same run options (--output,
--signature, --input_normalization, --value_range, --image_size, --data_dir,
--set, ...), sandboxed, the op allowlist applies; no leaderboard is written.
The bundle's manifest stores the run request. Next, a maintainer runs
`zoo-leaderboard verify BUNDLE` (re-hash, re-run a sample of the
evaluations) and `zoo-leaderboard merge BUNDLE --leaderboard=...`.
"""

import os

from absl import flags

from benchmark.cli import run_flags
from benchmark.cli.run_flags import define_flags, from_flags
from export import flags as fetch_flags
from zoo.cli import run_main

FLAGS = flags.FLAGS
# Every zoo-benchmark run option (--output, --signature, ...) but the
# leaderboard: a submission writes only its bundle.
define_flags(
    without=("leaderboard",),
    helps={"bundle": "Folder to write the results bundle to (required)."},
)
flags.adopt_module_key_flags(fetch_flags)
flags.adopt_module_key_flags(run_flags)
flags.mark_flags_as_required(["module", "bundle"])
flags.DEFINE_bool(
    "local", False, "Allow a local module (a bundle only you can verify)."
)


def fetchable(handle):
    """Returns whether others can fetch `handle`: a URL, or a name of the
    catalog that is not a local path."""
    from benchmark.modules.loading import URL_PREFIXES

    if handle.startswith(URL_PREFIXES):
        return True
    if os.path.exists(os.path.expanduser(handle)):
        return False
    from export.catalog import load_catalog

    return any(handle == e["name"] for e in load_catalog()["entries"])


def main(argv):
    del argv
    from benchmark.runner.execute import precheck

    request = from_flags(FLAGS).replace(leaderboard=None)  # no leaderboard flag
    precheck(request)  # before TensorFlow loads: bad arguments fail at once
    from benchmark.results.bundle import check_target

    check_target(FLAGS.bundle)
    if not FLAGS.local and not fetchable(FLAGS.module):
        raise ValueError(
            f"refusing to submit {FLAGS.module}: others cannot fetch a local module, "
            "so no maintainer can verify it. Publish it (zoo-export --archive, "
            "upload, pass its URL or add a catalog entry), or pass --local for a "
            "bundle only you can verify"
        )
    from benchmark.runner.execute import execute

    execute(request, report=lambda line: print(line, flush=True))
    print(
        f"bundle ready: {FLAGS.bundle}. Attach it to a pull request; "
        "maintainers run zoo-leaderboard verify on it"
    )


def run():
    run_main(main)


if __name__ == "__main__":
    run()
