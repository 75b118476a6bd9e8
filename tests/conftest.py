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


# What a build of the package reads from the checkout; everything else in
# it (the virtual environment, build/ and egg-info folders, runs) stays out.
SOURCE_ENTRIES = ("setup.py", "README.md", "LICENSE", "benchmark", "export",
                  "pipeline", "zoo")  # fmt: skip


def source_copy(dest):
    """A copy of the package's sources under `dest`, to build from.

    Two builds in the checkout share its build/ folder: run at once (pytest
    -n 2), one deletes what the other is copying. A copy each keeps them
    apart."""
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for entry in SOURCE_ENTRIES:
        src = REPO_ROOT / entry
        if src.is_dir():
            shutil.copytree(src, dest / entry, ignore=ignore)
        else:
            shutil.copy2(src, dest / entry)
    return dest


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


def build_trained_run(folder):
    """A real one-epoch zoo-train run on digits 0-4 (tiny width, 30 images per
    class) in `folder`; returns its path."""
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


def build_exported_module(folder, trained_run):
    """Exports `trained_run` into `folder`; returns (module dir, sha256)."""
    from export.hub_module import export_hub_module
    from zoo.trainer import load_trained_model

    model, objective, info = load_trained_model(trained_run)
    return export_hub_module(model, objective, info, str(folder / "digits_cosine"))


# The shared fixtures, in build order: name -> build(folder, *earlier values).
SHARED_BUILDS = {
    "trained_run": build_trained_run,
    "exported_module": build_exported_module,
}


def _shared_root(tmp_path_factory):
    """Returns the folder shared by every process of this test run."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    return root


def _build_locked(root, name, build, *args, lock=None):
    """Builds `name` under `root` unless done; returns its value. Holds the
    lock file `name.lock` (or the already locked file object `lock`)."""
    folder, done = root / name, root / f"{name}.json"
    with lock or open(root / f"{name}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed
            folder.mkdir()
            value = build(folder, *args)
            tmp = root / f"{name}.json.tmp"
            tmp.write_text(json.dumps(value))
            tmp.rename(done)
        return json.loads(done.read_text())


def built_once(tmp_path_factory, name, *args):
    """Returns the value of the shared fixture `name` (SHARED_BUILDS), built
    once per test run: the pytest-xdist workers share it (one builds while
    the others wait on its lock), and under xdist the controller starts
    building them all in the background before any test runs (see
    pytest_configure). The folder is read-only to the tests that use it."""
    return _build_locked(
        _shared_root(tmp_path_factory), name, SHARED_BUILDS[name], *args
    )


def prebuild_shared(root):
    """Builds every shared fixture under `root`, in order (the background
    builder's body: `python -c 'from tests.conftest import prebuild_shared;
    ...'`, holding the locks its parent took)."""
    root, values = pathlib.Path(root), []
    for name, build in SHARED_BUILDS.items():
        lock = os.fdopen(int(os.environ[f"ZOO_TEST_LOCK_{name.upper()}"]), "w")
        values.append(_build_locked(root, name, build, *values[-1:], lock=lock))


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    """Under xdist, the controller (which runs no test) starts one process
    that builds the shared fixtures while the workers start and run other
    tests. It takes their locks first, so a worker that needs one waits for
    that build instead of starting its own; if the build fails, the first
    worker that needs it builds it (and shows the error)."""
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    import subprocess
    import sys

    root = config._tmp_path_factory.getbasetemp()
    locks, env = [], {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in SHARED_BUILDS:
        lock = open(root / f"{name}.lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)
        locks.append(lock)
        env[f"ZOO_TEST_LOCK_{name.upper()}"] = str(lock.fileno())
    code = f"from tests.conftest import prebuild_shared; prebuild_shared({str(root)!r})"
    with open(root / "prebuild.log", "w") as log:
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO_ROOT,
            env={**env, "PYTHONPATH": str(REPO_ROOT)},
            stdout=log,
            stderr=log,
            pass_fds=[lock.fileno() for lock in locks],
        )
    for lock in locks:
        lock.close()  # the builder holds them now


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """Returns the workdir of a real one-epoch zoo-train run on digits 0-4
    (tiny width, 30 images per class): a real checkpoint for export tests."""
    return built_once(tmp_path_factory, "trained_run")


@pytest.fixture(scope="session")
def exported_module(trained_run, tmp_path_factory):
    """Returns (module dir, sha256) of `trained_run` exported by export/."""
    return tuple(built_once(tmp_path_factory, "exported_module", trained_run))


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
