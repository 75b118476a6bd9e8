"""The benchmark: scores any image module and keeps the leaderboard.

From Python (the README's "From Python"; the CLIs are thin shells over it):

    import benchmark
    results = benchmark.evaluate("path/to/module", config="smoke",
                                 evaluations=["knn"])
    print(results)               # a markdown table
    results.to_csv("runs/mine.csv")
    rows = benchmark.read_leaderboard("leaderboard.csv")

docs/architecture.md shows how the package is laid out and which part may
import which.
"""

from zoo import quiet as _quiet

_quiet.install()  # TensorFlow loads silently, whoever imports it


def evaluate(
    module,
    *,
    config="smoke",
    datasets=None,
    evaluations=None,
    leaderboard=None,
    cache_dir=None,
    data_dir=None,
    sandbox="auto",
    report=print,
    **module_options,
):
    """Scores `module` with a benchmark config and returns its `Results`.

    Args:
      module: a handle (SavedModel folder, .keras or .h5 file, .tar.gz,
        URL, catalog name), an in-memory `keras.Model` (saved as a .keras
        file for the run and scored like one: penultimate features, its
        head's logits, fine-tunable), or a callable from float32 images
        [batch, size, size, 3] in [0, 1] to features [batch, dim] (traced
        into a SavedModel in a temporary folder, then scored like any
        module).
      config: a config name (benchmark/configs) or a .py file.
      datasets, evaluations: the config's datasets / only these evaluators.
      leaderboard: a CSV to append the rows to (None: none).
      cache_dir: the feature cache folder (None: no disk cache).
      data_dir: the prepared TFDS data folder.
      sandbox: "auto", "require" or "off" (as zoo-benchmark --sandbox).
      report: receives progress lines (None: silent).
      **module_options: image_size, signature, output, value_range,
        input_normalization (benchmark.runner.request.ModuleOptions), and
        any other RunRequest field
        (max_per_class=..., overrides=("knn.weighted=true",), ...).

    Raises ValueError (one line) for bad input or a refused module.
    """
    from benchmark.runner.api import evaluate as run

    return run(
        module,
        config=config,
        datasets=datasets,
        evaluations=evaluations,
        leaderboard=leaderboard,
        cache_dir=cache_dir,
        data_dir=data_dir,
        sandbox=sandbox,
        report=report,
        **module_options,
    )


def read_leaderboard(path):
    """Returns the rows (dicts of the leaderboard schema) of the CSV at `path`."""
    from benchmark.results.leaderboard import read_rows

    return read_rows(path)


__all__ = ["evaluate", "read_leaderboard"]
