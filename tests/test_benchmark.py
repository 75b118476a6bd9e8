"""The benchmark harness: transfer-dataset registry (on tfds.testing.mock_data),
protocol preprocessing, the feature cache, the plot, and zoo-benchmark's bad
input run as a subprocess (one-line error, non-zero exit, no row, no cache)."""

import contextlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from benchmark.configs.config import BenchmarkConfig, evaluation, load_config
from benchmark.data import transfer as datasets
from benchmark.features import extract
from benchmark.modules.loading import Module, ModuleError, load_module
from benchmark.report import plot
from benchmark.results.leaderboard import make_row, read_rows
from benchmark.runner.harness import run_benchmark
from tests.conftest import write_tfds_metadata
from tests.test_modules import build_module_zoo
from zoo.data import DatasetError, eval_preprocess, load_dataset

REPO_LEADERBOARD = os.path.join(os.path.dirname(__file__), "..", "leaderboard.csv")

# What TFDS prepares per split (its catalog), independent of the registry.
TFDS_SPLITS = {
    "food101": {"train": 75_750, "validation": 25_250},
    "cifar10": {"train": 50_000, "test": 10_000},
    "cifar100": {"train": 50_000, "test": 10_000},
    "caltech_birds2011": {"train": 5_994, "test": 5_794},
    "sun397/standard-part1-120k": {
        "train": 19_850,
        "test": 19_850,
        "validation": 69_054,
    },
    "cars196": {"train": 8_144, "test": 8_041},
    "oxford_iiit_pet": {"train": 3_680, "test": 3_669},
    "oxford_flowers102": {"train": 1_020, "validation": 1_020, "test": 6_149},
}


def _fake_records(num_examples):
    """Returns a mock `_as_dataset`: `num_examples` records of PNG-encoded
    random images of a few sizes, labels i % 3 and tfds ids (what TfdsDataset
    reads with SkipDecoding). TFDS's own random records break on some
    features (its bounding boxes can have min > max)."""

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del decoders, read_config, kwargs
        rng = np.random.RandomState(0)
        static = self.info.features["image"].shape  # None where sizes vary.
        shapes = [
            [d or (5 + i % 3 + 2 * axis) for axis, d in enumerate(static)]
            for i in range(num_examples)
        ]
        images = [rng.randint(0, 256, size=s).astype(np.uint8) for s in shapes]
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": [tf.io.encode_png(i).numpy() for i in images],
                "label": np.arange(num_examples) % 3,
                "tfds_id": [f"{self.name}-{split}__{i}" for i in range(num_examples)],
            }
        )

    return as_dataset


@contextlib.contextmanager
def _mock_tfds(data_dir, tfds_name, sizes=None, num_examples=12):
    """Mocks TFDS reads of a prepared `tfds_name` (see _fake_records)."""
    write_tfds_metadata(data_dir, tfds_name, sizes or TFDS_SPLITS[tfds_name])
    with tfds.testing.mock_data(
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=str(data_dir),
        as_dataset_fn=_fake_records(num_examples),
    ):
        yield


@pytest.fixture(scope="module")
def module_zoo(tmp_path_factory):
    """Returns tests.test_modules.build_module_zoo's modules."""
    return build_module_zoo(tmp_path_factory.mktemp("module_zoo"))


# ---------------------------------------------------------- dataset registry


def test_the_registry_holds_the_papers_eight_transfer_sets():
    assert sorted(datasets.TRANSFER_SUITE) == datasets.list_transfer_datasets()
    assert len(datasets.TRANSFER_SUITE) == 8
    assert load_config("paper").datasets == datasets.TRANSFER_SUITE
    with pytest.raises(ValueError, match="--datasets"):
        load_config("local").evaluators()
    metrics = {n: datasets.transfer_spec(n).metric for n in datasets.TRANSFER_SUITE}
    assert {n for n, m in metrics.items() if m == "mean_per_class"} == {
        "oxford_iiit_pet",
        "oxford_flowers102",
    }
    assert set(metrics.values()) == {"top1", "mean_per_class"}
    birds = datasets.transfer_spec("caltech_birds2011")
    assert "Birdsnap" in birds.note


@pytest.mark.parametrize("name", datasets.TRANSFER_SUITE)
def test_every_transfer_set_loads_with_its_protocol_splits(tmp_path, name):
    spec = datasets.transfer_spec(name)
    with _mock_tfds(tmp_path, spec.tfds_name):
        dataset = datasets.load_benchmark_dataset(name, data_dir=str(tmp_path))
        assert dataset.name == name
        assert (dataset.train_split, dataset.test_split) == (
            spec.train_split,
            spec.test_split,
        )
        assert datasets.dataset_metric(dataset) == spec.metric
        assert dataset.num_examples(dataset.train_split) == spec.train_size
        assert dataset.num_examples(dataset.test_split) == spec.test_size
        assert datasets.size_mismatches(dataset) == []
        example = next(iter(dataset.as_dataset(dataset.test_split)))
        assert example["image"].dtype == tf.uint8
        assert example["image"].shape[-1] == 3
        assert 0 <= int(example["label"]) < dataset.num_classes


def test_flowers_train_is_the_union_of_train_and_validation(tmp_path):
    with _mock_tfds(tmp_path, "oxford_flowers102"):
        dataset = datasets.load_benchmark_dataset(
            "oxford_flowers102", data_dir=str(tmp_path)
        )
        assert dataset.train_split == "train+validation"
        assert dataset.num_examples("train+validation") == 1_020 + 1_020
        assert (
            dataset.fingerprint()
            != load_dataset(
                "tfds:oxford_flowers102", data_dir=str(tmp_path)
            ).fingerprint()
        )


def test_a_size_that_differs_from_the_registry_is_reported(tmp_path):
    with _mock_tfds(tmp_path, "cars196", sizes={"train": 8_000, "test": 8_041}):
        dataset = datasets.load_benchmark_dataset("cars196", data_dir=str(tmp_path))
        (line,) = datasets.size_mismatches(dataset)
        assert "8000 examples, expected 8144" in line


def test_metric_of_other_datasets(tmp_path):
    assert datasets.dataset_metric(load_dataset("digits_5to9")) == "top1"
    with _mock_tfds(tmp_path, "oxford_iiit_pet"):
        pets = load_dataset("tfds:oxford_iiit_pet", data_dir=str(tmp_path))
        assert datasets.dataset_metric(pets) == "mean_per_class"


def test_unknown_and_unprepared_datasets_say_what_to_do(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'bogus'.*cifar10"):
        datasets.load_benchmark_dataset("bogus")
    empty = tmp_path / "tfds"
    empty.mkdir()
    with pytest.raises(DatasetError, match="tfds build cifar10.*--data_dir"):
        datasets.load_benchmark_dataset("cifar10", data_dir=str(empty))
    with pytest.raises(DatasetError, match="tfds build sun397/standard-part1-120k"):
        datasets.load_benchmark_dataset("sun397", data_dir=str(empty))


def test_benchmark_on_mock_flowers_reports_mean_per_class(tmp_path, module_zoo):
    module = load_module(module_zoo["good"])
    config = BenchmarkConfig(
        name="flowers",
        datasets=("oxford_flowers102",),
        evaluations=(evaluation("knn"), evaluation("class_separation")),
    )
    with _mock_tfds(tmp_path, "oxford_flowers102", num_examples=30):
        rows = run_benchmark(
            config, module, data_dir=str(tmp_path), report=lambda line: None
        )
    assert [r["evaluation"] for r in rows] == ["knn", "class_separation"]
    knn, r2 = rows
    assert knn["dataset"] == r2["dataset"] == "oxford_flowers102"
    assert knn["split"] == "train+validation->test" and r2["split"] == "test"
    assert json.loads(knn["selected"])["val_accuracy"] >= 0.0
    protocol = json.loads(knn["protocol"])
    assert protocol["config"] == "flowers"
    assert protocol["preprocessing"]["crop_fraction"] == 1.0
    # Pets and Flowers report mean per-class accuracy: recomputed by hand.
    assert (
        datasets.dataset_metric(
            datasets.load_benchmark_dataset("oxford_flowers102", data_dir=str(tmp_path))
        )
        == "mean_per_class"
    )


# ---------------------------------------------------------------- extraction


def _image_folder(root, bad=None):
    """Writes ROOT/{train,test}/{a,b}/i.png, 10x14 random images (3 per class
    and split); `bad` names a file of train/a written with garbage bytes."""
    rng = np.random.RandomState(0)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                image = rng.randint(0, 256, size=(10, 14, 3)).astype(np.uint8)
                (folder / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    if bad:
        (root / "train" / "a" / bad).write_bytes(b"this is not an image")
    return str(root)


class _Pixels(tf.Module):
    """A real tf.Module whose features are its input pixels, flattened; it
    counts its calls and returns NaN on call `nan_on_call`."""

    def __init__(self, nan_on_call=None):
        super().__init__()
        self.calls = []
        self.nan_on_call = nan_on_call

    def __call__(self, images):
        self.calls.append(int(images.shape[0]))
        flat = tf.reshape(images, [tf.shape(images)[0], -1])
        return flat * float("nan") if len(self.calls) == self.nan_on_call else flat


def _pixel_module(image_size=4, value_range=(0.0, 1.0), nan_on_call=None):
    """Returns a Module around _Pixels (not saved: the extraction loop only
    calls it) and the list of its calls."""
    obj = _Pixels(nan_on_call)
    module = Module(
        handle="pixels",
        path="",
        sha256="0" * 64,
        metadata={},
        obj=obj,
        signature="__call__",
        output=None,
        image_size=image_size,
        size_source="override",
        input_dtype="float32",
        value_range=value_range,
        feature_dim=3 * image_size**2,
    )
    return module, obj.calls


def _extract_splits(module, dataset, splits, cache_dir, report=lambda s: None):
    """Returns {split: FeatureSet} through the harness's cached extraction."""
    cache = extract.FeatureCache(cache_dir, report)
    return {
        split: extract.extract(module, dataset, split, cache=cache, report=report)
        for split in splits
    }


def test_extraction_resizes_the_shorter_side_and_center_crops(tmp_path):
    dataset = load_dataset(_image_folder(tmp_path / "folder"))
    module, _ = _pixel_module(image_size=4)
    lines = []
    features = extract.extract_split(module, dataset, "train", report=lines.append)
    assert lines[-1].startswith("[features] imagefolder:") and "6/6" in lines[-1]
    images = [e["image"] for e in dataset.as_numpy_iterator("train")]
    for image, row in zip(images, features.features):
        # 10x14 -> shorter side 4: 4x6 (6 = round(14 * 0.4)), central 4 columns.
        resized = tf.image.resize(image / 255, [4, 6], antialias=True)[:, 1:5]
        np.testing.assert_allclose(row, np.ravel(resized), atol=1e-6)
        np.testing.assert_allclose(row, np.ravel(eval_preprocess(image, 4, 1.0)))
    assert list(features.ids) == [f"train/{c}/{i}.png" for c in "ab" for i in range(3)]
    np.testing.assert_array_equal(features.labels, [0, 0, 0, 1, 1, 1])


def test_the_cache_is_reused_and_keyed_by_what_changes_features(tmp_path):
    dataset = load_dataset(_image_folder(tmp_path / "folder"))
    cache = str(tmp_path / "cache")
    module, calls = _pixel_module()
    first = _extract_splits(module, dataset, ["train", "test"], cache)
    assert len(calls) == 2 and len(os.listdir(cache)) == 2
    lines = []
    again = _extract_splits(module, dataset, ["train", "test"], cache, lines.append)
    assert len(calls) == 2  # No forward pass: both splits came from the cache.
    assert lines == [
        f"[features] {dataset.name}/train: 6 from cache",
        f"[features] {dataset.name}/test: 6 from cache",
    ]
    for split in ("train", "test"):
        np.testing.assert_array_equal(first[split].features, again[split].features)
        np.testing.assert_array_equal(first[split].ids, again[split].ids)

    def key(module=module, split="train", **changes):
        settings = dict(
            output="features", max_per_class=None, crop_fraction=1.0, transform=None
        )
        return extract.cache_key(module, dataset, split, **{**settings, **changes})

    base, parts = key()
    assert parts["preprocessing"]["crop_fraction"] == 1.0
    scaled, _ = _pixel_module(value_range=(0.0, 255.0))
    variants = [
        key(split="test"),
        key(max_per_class=2),
        key(crop_fraction=0.875),
        key(module=scaled),
        key(output="logits"),
        key(transform=extract.Transform({"corruption": "fog"}, None)),
    ]
    assert len({base, *(k for k, _ in variants)}) == 7
    assert all(name.endswith(".npz") for name in os.listdir(cache))  # No temps.


def test_a_failed_split_writes_no_cache_entry(tmp_path):
    dataset = load_dataset(_image_folder(tmp_path / "folder"))
    cache = tmp_path / "cache"
    module, _ = _pixel_module(nan_on_call=2)  # Train is fine, test is NaN.
    with pytest.raises(ModuleError, match="NaN or infinite features on .*/test"):
        _extract_splits(module, dataset, ["train", "test"], str(cache))
    # Only the complete, checked train split was stored.
    (entry,) = os.listdir(cache)
    with np.load(cache / entry) as stored:
        assert '"split": "train"' in str(stored["key"])


def test_an_undecodable_image_fails_naming_the_file(tmp_path):
    dataset = load_dataset(_image_folder(tmp_path / "folder", bad="1b.png"))
    module, _ = _pixel_module()
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="cannot decode image .*1b.png"):
        _extract_splits(module, dataset, ["train"], str(cache))
    assert not cache.exists() or not os.listdir(cache)


# --------------------------------------------------------------------- plot


def _plot_rows():
    def row(source, objective, evaluation, dataset, metric, value, **extra):
        fields = dict(
            source=source,
            handle=f"h/{objective}" if source == "measured" else "",
            arch="resnet50",
            objective=objective,
            evaluation=evaluation,
            dataset=dataset,
            metric=metric,
            value=value,
            pretrain_dataset="digits_0to4",
        )
        fields.update(extra)
        return make_row(**fields)

    return [
        row("measured", "softmax", "linear_probe", "d1", "accuracy", 0.8),
        row("measured", "softmax", "linear_probe", "d2", "accuracy", 0.6),
        row("measured", "softmax", "class_separation", "digits_0to4", "r2", 0.3),
        row("measured", "softmax", "class_separation", "d1", "r2", 0.9),
        row("measured", "cosine", "class_separation", "d1", "r2", 0.5),
        row("measured", "cosine", "linear_probe", "d1", "accuracy", 0.5),
        row("measured", "sigmoid", "linear_probe", "d1", "accuracy", 0.5),
        row("paper:P", "softmax", "linear_probe", "d1", "accuracy", 0.75),
        row("paper:P", "softmax", "class_separation", "in_train", "r2", 0.35),
    ]


def test_plot_points_pair_pretraining_r2_with_mean_linear_accuracy(tmp_path):
    points = plot.separation_points(_plot_rows())
    # softmax: R^2 on its pretraining data only; accuracy averaged over d1, d2.
    # cosine: no R^2 on pretraining data, so all of its R^2 rows. sigmoid: no R^2.
    assert points["measured"] == [
        plot.Point("softmax", "resnet50", 0.3, pytest.approx(0.7)),
        plot.Point("cosine", "resnet50", 0.5, 0.5, r2_on="transfer"),
    ]
    assert points["reported"] == [
        plot.Point("softmax", "resnet50", 0.35, 0.75, r2_on="transfer")
    ]
    path = tmp_path / "sub" / "plot.png"
    with pytest.raises(ValueError, match="does not exist; create it first"):
        plot.plot_transfer_vs_separation(_plot_rows(), str(path))
    assert not path.parent.exists()  # a typo never creates folders
    path.parent.mkdir()
    plot.plot_transfer_vs_separation(_plot_rows(), str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(path.parent) == ["plot.png"]
    with pytest.raises(ValueError, match="no module has both"):
        plot.plot_transfer_vs_separation(_plot_rows()[:2], str(tmp_path / "x.png"))


# -------------------------------------------------------------- command line


def _assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("not_a_savedmodel", ("not a SavedModel",)),
        ("no_signature", ("no usable function",)),
        ("rank4", ("not [batch, features]",)),
        ("nan", ("NaN or infinite features",)),
        ("constant", ("same features for every image",)),
        ("read_file", ("refusing", "ReadFile")),
        ("write_file", ("refusing", "WriteFile")),
        ("unknown_dataset", ("unknown dataset 'bogus_set'", "cifar10")),
        ("tfds_missing", ("tfds build cifar10", "--data_dir")),
        ("undecodable_image", ("cannot decode image", "bad.png")),
        ("foreign_header", ("foreign header",)),
    ],
)
def test_bad_input_fails_with_one_line_and_writes_nothing(
    tmp_path, module_zoo, warm, case, fragments
):
    board, cache = tmp_path / "board.csv", tmp_path / "cache"
    module = module_zoo.get(case, module_zoo["good"])
    args = [
        f"--leaderboard={board}",
        f"--cache_dir={cache}",
        "--evaluations=linear_probe,knn,class_separation",
    ]
    if case == "not_a_savedmodel":
        module = str(tmp_path)
    elif case == "unknown_dataset":
        args.append("--datasets=bogus_set")
    elif case == "tfds_missing":
        (tmp_path / "tfds").mkdir()
        args += ["--datasets=cifar10", f"--data_dir={tmp_path / 'tfds'}"]
    elif case == "undecodable_image":
        folder = _image_folder(tmp_path / "folder", bad="bad.png")
        args += ["--config=local", f"--datasets={folder}"]
    elif case == "foreign_header":
        board.write_text("model,top1\nx,1\n")
    result = warm.run("benchmark.cli.benchmark", f"--module={module}", *args)
    _assert_one_line_error(result, *fragments)
    if case == "foreign_header":
        assert board.read_text() == "model,top1\nx,1\n"
    else:
        assert not board.exists()
    assert not cache.exists() or not os.listdir(cache)
    assert not os.path.exists(module_zoo["targets"]["write"])


def test_smoke_suite_writes_rows_and_reuses_the_cache(tmp_path, module_zoo, warm):
    board, cache = tmp_path / "board.csv", tmp_path / "cache"
    args = (
        f"--module={module_zoo['good']}",
        f"--leaderboard={board}",
        f"--cache_dir={cache}",
        "--evaluations=linear_probe,knn,class_separation",
        "--set=knn.chunk_size=7",
        "--value_range=0,255",
    )
    first = warm.run("benchmark.cli.benchmark", *args)
    assert first.returncode == 0, first.stderr
    rows = read_rows(str(board))
    assert [r["evaluation"] for r in rows] == [
        "linear_probe",
        "knn",
        "class_separation",
    ]
    assert {r["dataset"] for r in rows} == {"digits_5to9"}
    assert '"chunk_size": 7' in rows[1]["protocol"]
    assert '"value_range": [0.0, 255.0]' in rows[0]["protocol"]
    assert len(os.listdir(cache)) == 2
    again = warm.run("benchmark.cli.benchmark", *args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("from cache") == 2
    assert len(read_rows(str(board))) == 3  # Same key: replaced, not added.


def test_leaderboard_cli_writes_the_plot(tmp_path, warm):
    path = tmp_path / "plot.png"
    result = warm.run(
        "benchmark.cli.leaderboard",
        f"--leaderboard={REPO_LEADERBOARD}",
        f"--plot={path}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rank objective")
    assert "reported modules written" in result.stdout
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_corrupt_or_wrong_cache_entries_are_recomputed(tmp_path):
    dataset = load_dataset(_image_folder(tmp_path / "folder"))
    cache_dir = tmp_path / "cache"
    module, calls = _pixel_module()
    fresh = _extract_splits(module, dataset, ["train", "test"], str(cache_dir))
    assert len(calls) == 2
    entries = {}
    for name in os.listdir(cache_dir):
        with np.load(cache_dir / name) as stored:
            entries['"split": "train"' in str(stored["key"])] = cache_dir / name
    train_entry, test_entry = entries[True], entries[False]

    def damage(how):
        if how == "truncated":
            data = train_entry.read_bytes()
            train_entry.write_bytes(data[: len(data) // 2])
        elif how == "flipped":  # A valid archive whose values changed.
            with np.load(train_entry) as stored:
                arrays = dict(stored)
            arrays["features"] = arrays["features"] + 1.0
            np.savez(train_entry, **arrays)
        elif how == "swapped":  # Another split's valid entry under this name.
            train_entry.write_bytes(test_entry.read_bytes())

    for how in ("truncated", "flipped", "swapped"):
        damage(how)
        lines = []
        again = _extract_splits(
            module, dataset, ["train"], str(cache_dir), lines.append
        )
        assert any("recomputing" in line for line in lines), how
        np.testing.assert_array_equal(again["train"].features, fresh["train"].features)
        np.testing.assert_array_equal(again["train"].ids, fresh["train"].ids)
    assert len(calls) == 5  # One fresh extraction per damaged entry.
    lines = []
    _extract_splits(module, dataset, ["train", "test"], str(cache_dir), lines.append)
    assert len(calls) == 5 and all("from cache" in line for line in lines)


def test_orphan_temporaries_are_removed_and_a_file_is_no_cache(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    orphan = cache_dir / f"abc.npz.tmp-{dead}.npz"
    live = cache_dir / f"def.npz.tmp-{os.getpid()}.npz"
    for path in (orphan, live):
        path.write_bytes(b"partial")
    extract.FeatureCache(str(cache_dir), report=lambda line: None)
    assert not orphan.exists() and live.exists()
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        extract.FeatureCache(str(not_a_folder))
