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
verify. The run is zoo-benchmark's (sandboxed, the op allowlist applies); no
leaderboard is written. docs/submissions.md describes what happens next.
"""

import os
import subprocess
import sys

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "module", None, "Module handle (a URL or catalog name).", required=True
)
flags.DEFINE_string("config", "smoke", "Benchmark config name or .py file.")
flags.DEFINE_string("bundle", None, "Folder to write the bundle to.", required=True)
flags.DEFINE_bool(
    "local", False, "Allow a local module (a bundle only you can verify)."
)
flags.DEFINE_multi_string("set", [], "Config override KEY=VALUE (as zoo-benchmark).")
flags.DEFINE_list("datasets", None, "Dataset specs (as zoo-benchmark).")
flags.DEFINE_list("evaluations", None, "Run only these evaluators.")
flags.DEFINE_integer("max_per_class", None, "Cap on images per class and split.")
flags.DEFINE_integer("image_size", None, "Override the module's input size.")
flags.DEFINE_string("data_dir", None, "Prepared TFDS data directory.")


def fetchable(handle):
    """Returns whether others can fetch `handle`: a URL, or a name of the
    catalog that is not a local path."""
    from benchmark.modules import URL_PREFIXES

    if handle.startswith(URL_PREFIXES):
        return True
    if os.path.exists(os.path.expanduser(handle)):
        return False
    from export.catalog import load_catalog

    return any(handle == e["name"] for e in load_catalog()["entries"])


def main(argv):
    del argv
    from benchmark.bundle import check_target

    check_target(FLAGS.bundle)
    if not FLAGS.local and not fetchable(FLAGS.module):
        raise ValueError(
            f"refusing to submit {FLAGS.module}: others cannot fetch a local module, "
            "so no maintainer can verify it. Publish it (zoo-export --archive, "
            "upload, pass its URL or add a catalog entry), or pass --local for a "
            "bundle only you can verify"
        )
    cmd = [sys.executable, "-m", "benchmark.main", f"--module={FLAGS.module}"]
    cmd += [f"--config={FLAGS.config}", f"--bundle={FLAGS.bundle}", "--leaderboard="]
    cmd += [f"--set={item}" for item in FLAGS.set]
    for name in ("datasets", "evaluations"):
        if getattr(FLAGS, name):
            cmd.append(f"--{name}={','.join(getattr(FLAGS, name))}")
    for name in ("max_per_class", "image_size", "data_dir"):
        if getattr(FLAGS, name) is not None:
            cmd.append(f"--{name}={getattr(FLAGS, name)}")
    code = subprocess.run(cmd).returncode
    if code:
        sys.exit(code)  # zoo-benchmark printed its one-line reason
    print(
        f"bundle ready: {FLAGS.bundle}. Attach it to a pull request "
        "(docs/submissions.md); maintainers run zoo-leaderboard verify on it"
    )


def run():
    run_main(main)


if __name__ == "__main__":
    run()
