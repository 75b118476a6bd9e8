"""Shared pytest fixtures and markers."""

import contextlib
import fcntl
import json
import os
import pathlib
import shutil

import pytest

# Quiet TensorFlow's C++ start-up logging; set before any test imports TF.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def pytest_configure(config):
    # pytest.ini may register it already; registering twice lists it twice.
    if not any(line.startswith("slow:") for line in config.getini("markers")):
        config.addinivalue_line(
            "markers", "slow: a long-running test (deselect with -m 'not slow')"
        )


@pytest.fixture(scope="session")
def shared_data():
    """Returns the pathlib.Path of the real data folder ../shared/data.

    A missing folder fails the test when the CI environment variable is set
    (so CI never passes by skipping) and skips it otherwise.
    """
    if not SHARED_DATA.is_dir():
        message = f"real data folder {SHARED_DATA} is missing"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the real-data tests must run")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def warm():
    """A warm Python (tests/warm.py) for this test process's command runs:
    `warm.run(module, *args)` is ``python -m module args`` without the
    TensorFlow start-up; returns a subprocess.CompletedProcess."""
    from tests.warm import WarmPython

    python = WarmPython()
    yield python
    python.close()


def built_once(tmp_path_factory, name, build):
    """Returns what `build(folder)` returned for the folder `name`, building it
    once per test run: the pytest-xdist workers share it (one builds while
    the others wait on a lock). `build` returns a JSON-serialisable value;
    the folder must be read-only to the tests that use it."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, done = root / name, root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed
            folder.mkdir()
            done.write_text(json.dumps(build(folder)))
        return json.loads(done.read_text())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Returns the workdir of a real one-epoch zoo-train run on digits 0-4
    (tiny width, 30 images per class): a real checkpoint for export tests."""

    def build(folder):
        from zoo.configs import load_config
        from zoo.trainer import train_and_evaluate

        config = load_config("digits").replace(
            objective="cosine_softmax",
            width_multiplier=0.0625,
            epochs=1,
            max_per_class=30,
            global_batch_size=32,
            holdout_fraction=0.2,
        )
        train_and_evaluate(config, str(folder), report=lambda line: None)
        return str(folder)

    return built_once(tmp_path_factory, "trained_run", build)


@pytest.fixture(scope="session")
def exported_module(trained_run, tmp_path_factory):
    """Returns (module dir, sha256) of `trained_run` exported by export/."""

    def build(folder):
        from export.hub_module import export_hub_module
        from zoo.trainer import load_trained_model

        model, objective, info = load_trained_model(trained_run)
        return export_hub_module(model, objective, info, str(folder / "digits_cosine"))

    return tuple(built_once(tmp_path_factory, "exported_module", build))


def write_tfds_metadata(data_dir, name, split_sizes):
    """Writes the metadata of a prepared TFDS dataset, without its records.

    tfds.testing.mock_data then serves random records for it, with the real
    split names and sizes (without metadata the mock knows no splits).
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    template = tfds.core.ShardedFileTemplate(
        data_dir=builder.data_dir, dataset_name=builder.name, filetype_suffix="tfrecord"
    )
    splits = [
        tfds.core.SplitInfo(
            name=split,
            shard_lengths=[size],
            num_bytes=0,
            filename_template=template.replace(split=split),
        )
        for split, size in split_sizes.items()
    ]
    builder.info.set_splits(tfds.core.SplitDict(splits))
    tf.io.gfile.makedirs(builder.data_dir)
    builder.info.write_to_directory(builder.data_dir)


def save_module_without_logits(path):
    """Saves at `path` a SavedModel whose __call__ returns mean colours and
    that has no `logits` signature (metadata.json declares 8 px)."""
    import json

    import tensorflow as tf

    module = tf.Module()
    module.__call__ = tf.function(
        lambda images: tf.reduce_mean(images, axis=[1, 2]),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
    )
    tf.saved_model.save(module, str(path))
    (path / "metadata.json").write_text(json.dumps({"image_size": 8}))


@contextlib.contextmanager
def mock_prepared_tfds(data_dir, datasets, labels):
    """Serves prepared-looking TFDS datasets through tfds.testing.mock_data.

    `datasets` maps TFDS names to {split: size}; their metadata is written to
    `data_dir` (so TfdsDataset sees them as prepared) and every split of
    every one reads as one gray PNG per entry of `labels` (at the image
    feature's static size where it has one, else 32 x 24), with tfds ids.
    """
    import numpy as np
    import tensorflow as tf
    import tensorflow_datasets as tfds

    for name, splits in datasets.items():
        write_tfds_metadata(data_dir, name, splits)

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del decoders, read_config, kwargs
        static = self.info.features["image"].shape
        shape = [d or default for d, default in zip(static, (32, 24, 3))]
        png = tf.io.encode_png(np.full(shape, 128, np.uint8)).numpy()
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": [png] * len(labels),
                "label": np.asarray(labels, np.int64),
                "tfds_id": [f"{self.name}-{split}__{i}" for i in range(len(labels))],
            }
        )

    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=str(data_dir),
        as_dataset_fn=as_dataset,
    ):
        yield
