"""zoo-pull: fetch a catalog module into the TF-Hub cache, verified by sha256.

Examples:
  zoo-pull --list
  zoo-pull authors_resnet50_softmax_seed0
  zoo-pull --catalog=my_catalog.json --cache_dir=/data/tfhub digits_cosine
Prints the local module folder on stdout (progress goes to stderr), so
`zoo-benchmark --module=$(zoo-pull NAME)` works. The cache is tensorflow_hub's
(TFHUB_CACHE_DIR, default <system temp>/tfhub_modules); a module already there
is used without network once its files rehash to what was verified. A
download is bounded by the entry's size and --max_module_mb, and by
--download_deadline_s. The catalog is the one shipped with the package unless
--catalog or ZOO_CATALOG names another.
"""

import sys

from absl import flags

from export import flags as fetch_flags
from export.flags import define_fetch_flags
from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_bool("list", False, "Print the catalog as a table and exit.")
flags.DEFINE_string("catalog", None, "Catalog JSON file (default $ZOO_CATALOG).")
flags.DEFINE_string("cache_dir", None, "Cache folder (default TF-Hub's cache).")
define_fetch_flags()
flags.adopt_module_key_flags(fetch_flags)


def main(argv):
    from export.catalog import CatalogError, format_table, load_catalog, pull
    from export.fetch import set_limits

    limits = set_limits(FLAGS.max_module_mb, FLAGS.download_deadline_s)
    catalog = load_catalog(FLAGS.catalog)
    if FLAGS.list:
        print(format_table(catalog))
        return
    names = argv[1:]
    if len(names) != 1:
        raise CatalogError(
            f"pass one module name (got {len(names)}); zoo-pull --list lists them"
        )
    report = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    print(
        pull(
            names[0],
            cache_dir=FLAGS.cache_dir,
            report=report,
            catalog=catalog,
            limits=limits,
        )
    )


def run():
    run_main(main)


if __name__ == "__main__":
    run()
