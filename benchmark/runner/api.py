"""What `benchmark.evaluate` does: a RunRequest from Python arguments, an
in-memory model saved as a module, and the `Results` it returns."""

import contextlib
import dataclasses
import os
import tempfile

from benchmark.runner.request import ModuleOptions, RunRequest


@dataclasses.dataclass(frozen=True)
class Results:
    """The rows of one run, in the leaderboard's schema.

    Attributes:
      rows: list of dicts, one per (evaluation, dataset, split, metric).
      request: the RunRequest that measured them.
    """

    rows: list
    request: RunRequest

    def to_csv(self, path):
        """Appends the rows to the leaderboard CSV at `path` (created with the
        stable header when missing); returns `path`."""
        from benchmark.results.leaderboard import append_rows

        append_rows(path, self.rows)
        return path

    def value(self, evaluation, metric=None, dataset=None):
        """Returns the value of the one row matching these names."""
        found = [
            float(r["value"])
            for r in self.rows
            if r["evaluation"] == evaluation
            and metric in (None, r["metric"])
            and dataset in (None, r["dataset"])
        ]
        if len(found) != 1:
            raise KeyError(f"{len(found)} rows match {evaluation} {metric} {dataset}")
        return found[0]

    def __str__(self):
        from benchmark.results.leaderboard import summary_table

        return summary_table(self.rows)


def evaluate(module, *, config, datasets, evaluations, leaderboard, cache_dir,
             data_dir, sandbox, report, **options):  # fmt: skip
    """See benchmark.evaluate."""
    from benchmark.runner.execute import execute

    option_names = {f.name for f in dataclasses.fields(ModuleOptions)}
    module_options = ModuleOptions(
        **{k: options.pop(k) for k in list(options) if k in option_names}
    )
    for name in ("overrides", "datasets", "evaluations"):
        if isinstance(options.get(name), list):
            options[name] = tuple(options[name])
    with _as_handle(module, module_options) as (handle, record):
        request = RunRequest(
            module=handle,
            record_handle=record,
            options=module_options,
            config=config,
            datasets=tuple(datasets) if datasets else None,
            evaluations=tuple(evaluations) if evaluations else None,
            leaderboard=leaderboard,
            cache_dir=cache_dir,
            data_dir=data_dir,
            sandbox=sandbox,
            **options,
        )
        rows = execute(request, report=report)
    return Results(rows, request)


@contextlib.contextmanager
def _as_handle(module, options):
    """Yields (handle, handle to record or None) for `module`: a string or
    path as it is; an in-memory keras.Model saved as a .keras file for the
    call (scored like any Keras file: penultimate features, fine-tunable),
    or traced into a SavedModel when its layers are not Keras's own (custom
    classes, Lambda layers, which a .keras file cannot hold safely); any
    other callable traced into a SavedModel."""
    if isinstance(module, (str, os.PathLike)):
        yield os.fspath(module), None
        return
    if not callable(module):
        raise ValueError(
            f"benchmark.evaluate takes a module handle, a keras.Model or a callable "
            f"from images to features, not {type(module).__name__}"
        )
    name = getattr(module, "name", None) or type(module).__name__
    with tempfile.TemporaryDirectory(prefix="zoo-evaluate-") as tmp:
        path = _save_keras(module, tmp)
        if path is None:
            path = os.path.join(tmp, "module")
            save_callable(module, path, options.image_size)
        yield path, f"in-memory:{name}"


def _save_keras(model, folder):
    """Returns the .keras file `model` was saved to in `folder`, or None when
    it is not a Keras model or its file would be refused by the scan."""
    try:
        import keras
    except ImportError:
        return None
    if not isinstance(model, keras.Model):
        return None
    from benchmark.modules import keras_files

    path = os.path.join(folder, "model.keras")
    try:
        model.save(path)
        keras_files.scan(path)
    except (keras_files.KerasFileError, ValueError, TypeError, NotImplementedError):
        os.remove(path) if os.path.exists(path) else None
        return None
    return path


def save_callable(model, path, image_size=None):
    """Saves `model` (a keras.Model or a callable from float32 images in
    [0, 1] to features) as a TF2 SavedModel whose `__call__` takes
    [batch, size, size, 3] images: the size is `image_size`, else the
    model's own input size, else any."""
    import tensorflow as tf

    size = image_size or _input_size(model)
    spec = tf.TensorSpec([None, size, size, 3], tf.float32)
    holder = tf.Module()
    holder.model = model
    holder.__call__ = tf.function(lambda images: model(images), input_signature=[spec])
    tf.saved_model.save(holder, path)
    return path


def _input_size(model):
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] == shape[2]:
        return shape[1]
    return None
