"""Tests of zoo.data: embedded digits, image folders, TFDS, preprocessing."""

import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from sklearn.datasets import load_digits

from tests.conftest import write_tfds_metadata
from zoo.data import (
    DATASETS,
    DatasetError,
    ImageDataset,
    eval_preprocess,
    list_datasets,
    load_dataset,
    train_preprocess,
)
from zoo.data.base import ensure_rgb

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def _examples(dataset, split, **kwargs):
    return list(dataset.as_numpy_iterator(split, **kwargs))


def _ids(dataset, split, **kwargs):
    return [e["id"] for e in _examples(dataset, split, **kwargs)]


# Embedded digits.


def test_list_datasets_has_the_digits_family():
    assert list_datasets() == ["digits", "digits_0to4", "digits_5to9"]
    assert list_datasets("digits_*") == ["digits_0to4", "digits_5to9"]
    assert "digits" in DATASETS


def test_digits_split_is_stratified_20_percent():
    dataset = load_dataset("digits")
    assert isinstance(dataset, ImageDataset)
    assert dataset.splits == ("train", "test")
    assert (dataset.train_split, dataset.test_split) == ("train", "test")
    assert dataset.num_examples("train") + dataset.num_examples("test") == 1797
    per_class = np.bincount(load_digits().target)
    test_counts = np.bincount(dataset.labels("test"), minlength=10)
    np.testing.assert_array_equal(test_counts, np.round(0.2 * per_class))
    train_ids, test_ids = _ids(dataset, "train"), _ids(dataset, "test")
    assert len(set(train_ids) | set(test_ids)) == 1797
    assert not set(train_ids) & set(test_ids)


def test_digit_subsets_relabel_and_partition_the_full_dataset():
    full = load_dataset("digits")
    low, high = load_dataset("digits_0to4"), load_dataset("digits_5to9")
    assert low.class_names == ["0", "1", "2", "3", "4"]
    assert high.class_names == ["5", "6", "7", "8", "9"]
    assert low.num_classes == high.num_classes == 5
    for split in ("train", "test"):
        low_examples, high_examples = _examples(low, split), _examples(high, split)
        assert {e["label"] for e in low_examples} == set(range(5))
        assert {e["label"] for e in high_examples} == set(range(5))
        low_ids = {e["id"] for e in low_examples}
        high_ids = {e["id"] for e in high_examples}
        assert not low_ids & high_ids
        # Per-digit splits: the halves split exactly like the full dataset.
        assert low_ids | high_ids == set(_ids(full, split))
    by_id = {e["id"]: e for e in _examples(full, "test")}
    for example in _examples(high, "test"):
        assert by_id[example["id"]]["label"] == example["label"] + 5
        np.testing.assert_array_equal(by_id[example["id"]]["image"], example["image"])


def test_digits_pixels_are_rescaled_uint8_rgb():
    dataset = load_dataset("digits")
    spec = dataset.as_dataset("train").element_spec
    assert spec["image"] == tf.TensorSpec([8, 8, 3], tf.uint8)
    assert spec["label"] == tf.TensorSpec([], tf.int64)
    assert spec["id"] == tf.TensorSpec([], tf.string)
    examples = _examples(dataset, "test")
    images = np.stack([e["image"] for e in examples])
    assert images.min() == 0 and images.max() == 255
    np.testing.assert_array_equal(images[..., 0], images[..., 2])
    raw = load_digits().images
    first = examples[0]
    assert first["id"].startswith("digits/") and len(first["id"]) == len("digits/0000")
    index = int(first["id"].split("/")[1])
    np.testing.assert_array_equal(
        first["image"][..., 1], np.round(raw[index] * 255 / 16).astype(np.uint8)
    )
    assert first["label"] == load_digits().target[index]


def test_digits_are_deterministic_and_fingerprinted():
    first, second = load_dataset("digits_0to4"), load_dataset("digits_0to4")
    a, b = _examples(first, "train"), _examples(second, "train")
    assert [e["id"] for e in a] == [e["id"] for e in b]
    np.testing.assert_array_equal(
        np.stack([e["image"] for e in a]), np.stack([e["image"] for e in b])
    )
    assert first.fingerprint() == second.fingerprint()
    assert len(first.fingerprint()) == 16
    int(first.fingerprint(), 16)
    fingerprints = {load_dataset(n).fingerprint() for n in list_datasets()}
    assert len(fingerprints) == 3


def test_digits_max_per_class_keeps_the_first_examples():
    dataset = load_dataset("digits_5to9")
    assert dataset.num_examples("train", max_per_class=3) == 15
    subset = _examples(dataset, "train", max_per_class=3)
    assert np.bincount([e["label"] for e in subset]).tolist() == [3] * 5
    everything = _examples(dataset, "train")
    for label in range(5):
        first_three = [e["id"] for e in everything if e["label"] == label][:3]
        assert [e["id"] for e in subset if e["label"] == label] == first_three
    with pytest.raises(DatasetError, match="max_per_class"):
        dataset.num_examples("train", max_per_class=0)


def test_unknown_split_names_the_available_splits():
    dataset = load_dataset("digits")
    with pytest.raises(DatasetError, match="no split 'validation'.*train, test"):
        dataset.as_dataset("validation")
    with pytest.raises(DatasetError, match="no split 'val'"):
        dataset.as_numpy_iterator("val")  # Raised at the call, not at next().


def test_unknown_dataset_name():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar99'.*digits_0to4"):
        load_dataset("cifar99")


# Image folders.


def _pixels(seed, shape=(6, 5, 3)):
    return np.random.RandomState(seed).randint(0, 256, size=shape, dtype=np.uint8)


def _write_image(path, pixels):
    """Writes `pixels` as PNG (lossless) or JPEG, by the file extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        data = tf.io.encode_png(pixels)
    else:
        data = tf.io.encode_jpeg(pixels)
    path.write_bytes(data.numpy())


FOLDER_FILES = {
    "train": {
        "cat": ["a.png", "b.JPG", "c.jpeg"],
        "dog": ["d.png", "e.jpg"],
        "fish": ["f.png", "g.png"],
    },
    "test": {"cat": ["h.png"], "dog": ["i.png"], "fish": ["j.jpg"]},
}


@pytest.fixture
def folder(tmp_path):
    """Returns a 3-class train/test image folder with PNG and JPEG files."""
    root = tmp_path / "pets"
    seed = 0
    for split, classes in FOLDER_FILES.items():
        for class_name, names in classes.items():
            for name in names:
                seed += 1
                _write_image(root / split / class_name / name, _pixels(seed))
    # Ignored: non-image files, hidden files and grayscale stays readable.
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    _write_image(root / "train" / "dog" / ".hidden.png", _pixels(99))
    _write_image(root / "test" / "fish" / "k.png", _pixels(100, (7, 4, 1)))
    return root


def test_image_folder_structure(folder):
    dataset = load_dataset(str(folder))
    assert dataset.name == f"imagefolder:{folder}"
    assert dataset.class_names == ["cat", "dog", "fish"]
    assert dataset.num_classes == 3
    assert set(dataset.splits) == {"train", "test"}
    assert (dataset.train_split, dataset.test_split) == ("train", "test")
    assert dataset.num_examples("train") == 7
    assert dataset.num_examples("test") == 4
    examples = _examples(dataset, "train")
    assert [e["id"] for e in examples] == [
        f"train/{c}/{n}" for c, names in FOLDER_FILES["train"].items() for n in names
    ]
    assert [e["label"] for e in examples] == [0, 0, 0, 1, 1, 2, 2]
    for example in examples:
        assert example["image"].shape == (6, 5, 3)
        assert example["image"].dtype == np.uint8
    # PNG is lossless: the first image comes back exactly.
    np.testing.assert_array_equal(examples[0]["image"], _pixels(1))


def test_image_folder_elements_and_grayscale(folder):
    dataset = load_dataset(str(folder))
    spec = dataset.as_dataset("test").element_spec
    assert spec["image"] == tf.TensorSpec([None, None, 3], tf.uint8)
    assert spec["label"] == tf.TensorSpec([], tf.int64)
    assert spec["id"] == tf.TensorSpec([], tf.string)
    gray = _examples(dataset, "test")[-1]
    assert gray["id"] == "test/fish/k.png"
    assert gray["image"].shape == (7, 4, 3)
    np.testing.assert_array_equal(
        gray["image"][..., 2], _pixels(100, (7, 4, 1))[..., 0]
    )


def test_image_folder_max_per_class(folder):
    dataset = load_dataset(str(folder))
    assert dataset.num_examples("train", max_per_class=1) == 3
    assert _ids(dataset, "train", max_per_class=2) == [
        "train/cat/a.png",
        "train/cat/b.JPG",
        "train/dog/d.png",
        "train/dog/e.jpg",
        "train/fish/f.png",
        "train/fish/g.png",
    ]


def test_image_folder_fingerprint_tracks_the_files(folder):
    before = load_dataset(str(folder)).fingerprint()
    assert load_dataset(f"imagefolder:{folder}").fingerprint() == before
    _write_image(folder / "test" / "cat" / "z.png", _pixels(7))
    assert load_dataset(str(folder)).fingerprint() != before


def test_image_folder_fingerprint_hashes_content_not_times(folder):
    """A reset modification time (a fresh copy of the data) keeps the
    fingerprint; one changed pixel does not."""
    before = load_dataset(str(folder)).fingerprint()
    image = folder / "train" / "fish" / "f.png"
    os.utime(image, ns=(1, 1))
    assert load_dataset(str(folder)).fingerprint() == before
    pixels = tf.io.decode_png(image.read_bytes()).numpy()
    pixels[0, 0, 0] ^= 1
    _write_image(image, pixels)
    os.utime(image, ns=(1, 1))
    assert load_dataset(str(folder)).fingerprint() != before


def test_relative_and_home_paths_resolve(folder, monkeypatch):
    monkeypatch.chdir(folder.parent)
    assert load_dataset("./pets").name == f"imagefolder:{folder}"
    assert load_dataset("pets").name == f"imagefolder:{folder}"  # Exists.
    monkeypatch.setenv("HOME", str(folder.parent))
    assert load_dataset("~/pets").name == f"imagefolder:{folder}"


def test_single_split_layout(tmp_path):
    for class_name in ("ants", "bees"):
        for index in range(2):
            _write_image(tmp_path / class_name / f"{index}.png", _pixels(index))
    dataset = load_dataset(str(tmp_path))
    assert dataset.splits == ("train",)
    assert dataset.test_split is None
    assert dataset.class_names == ["ants", "bees"]
    assert _ids(dataset, "train") == [
        "ants/0.png",
        "ants/1.png",
        "bees/0.png",
        "bees/1.png",
    ]
    with pytest.raises(DatasetError, match="no split 'test'; use one of: train"):
        dataset.num_examples("test")


def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"data path {missing} not found; pass"):
        load_dataset(str(missing))
    with pytest.raises(DatasetError, match="not found"):
        load_dataset("./definitely/not/here")


def test_path_that_is_a_file(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("x")
    with pytest.raises(DatasetError, match="is not a directory"):
        load_dataset(str(path))


def test_empty_class_folder(folder):
    (folder / "train" / "bird").mkdir()
    (folder / "test" / "bird").mkdir()
    _write_image(folder / "test" / "bird" / "x.png", _pixels(5))
    message = (
        f"image folder {folder}: class 'bird' in split 'train' has no images; "
        "add images or remove the folder"
    )
    with pytest.raises(DatasetError) as error:
        load_dataset(str(folder))
    assert str(error.value) == message


def test_mismatched_classes(folder):
    _write_image(folder / "test" / "bird" / "x.png", _pixels(5))
    with pytest.raises(DatasetError, match=r"split 'test'.*extra \['bird'\]"):
        load_dataset(str(folder))


def test_too_few_classes_and_no_train_split(tmp_path):
    _write_image(tmp_path / "one" / "only" / "x.png", _pixels(1))
    with pytest.raises(DatasetError, match="at least 2 class folders"):
        load_dataset(str(tmp_path / "one"))
    _write_image(tmp_path / "two" / "test" / "a" / "x.png", _pixels(1))
    with pytest.raises(DatasetError, match="no 'train'"):
        load_dataset(str(tmp_path / "two"))


def test_undecodable_image_is_named(folder):
    bad = folder / "train" / "dog" / "x.jpg"
    bad.write_bytes(b"these bytes are not an image")
    dataset = load_dataset(str(folder))
    with pytest.raises(DatasetError, match=f"cannot decode image {bad}: .*delete"):
        _examples(dataset, "train")
    # The plain tf.data pipeline fails with TF's own error, as documented.
    with pytest.raises(tf.errors.InvalidArgumentError):
        list(dataset.as_dataset("train"))
    # Examples before the bad file are still read; the subset without it works.
    assert len(_examples(dataset, "train", max_per_class=2)) == 6


def test_errors_are_one_line(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_dataset(str(tmp_path / "missing"))
    assert "\n" not in str(error.value)
    with pytest.raises(DatasetError) as error:
        load_dataset("tfds:cifar10", data_dir=str(tmp_path))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, None])
def test_ensure_rgb(channels):
    pixels = _pixels(8, (3, 2, channels or 4))
    if channels is None:  # Channel count known only when the graph runs.
        rgb = tf.function(ensure_rgb, input_signature=[tf.TensorSpec(None, tf.uint8)])
    else:
        rgb = ensure_rgb
    output = rgb(tf.constant(pixels)).numpy()
    assert output.shape == (3, 2, 3)
    if (channels or 4) <= 2:
        np.testing.assert_array_equal(output, np.repeat(pixels[..., :1], 3, axis=-1))
    else:
        np.testing.assert_array_equal(output, pixels[..., :3])


# TFDS.


@pytest.fixture
def mock_tfds(tmp_path):
    """Mocks TFDS records for prepared-looking cifar10 and mnist metadata."""
    write_tfds_metadata(tmp_path, "cifar10", {"train": 50000, "test": 10000})
    write_tfds_metadata(tmp_path, "mnist", {"train": 60000, "test": 10000})
    with tfds.testing.mock_data(
        num_examples=40,
        policy=tfds.testing.MockPolicy.USE_FILES,
        data_dir=str(tmp_path),
    ):
        yield tmp_path


def test_tfds_cifar10(mock_tfds):
    dataset = load_dataset("tfds:cifar10", data_dir=str(mock_tfds))
    assert dataset.name == "tfds:cifar10"
    assert dataset.num_classes == 10
    # Real prepared data names the classes; metadata written from code has "0"..
    assert len(dataset.class_names) == 10
    assert dataset.splits == ("test", "train")
    assert (dataset.train_split, dataset.test_split) == ("train", "test")
    assert dataset.num_examples("train") == 50000
    spec = dataset.as_dataset("train").element_spec
    assert spec["image"] == tf.TensorSpec([32, 32, 3], tf.uint8)
    assert spec["label"] == tf.TensorSpec([], tf.int64)
    assert spec["id"] == tf.TensorSpec([], tf.string)
    examples = _examples(dataset, "train")
    assert len(examples) == 40  # The mock's record count.
    assert all(0 <= e["label"] < 10 for e in examples)
    assert len({e["id"] for e in examples}) == 40
    assert examples[0]["id"].startswith("cifar10-train.tfrecord")
    assert _ids(dataset, "train") == [e["id"] for e in examples]  # Deterministic.


def test_tfds_max_per_class(mock_tfds):
    dataset = load_dataset("tfds:cifar10", data_dir=str(mock_tfds))
    everything = _examples(dataset, "test")
    subset = _examples(dataset, "test", max_per_class=1)
    labels = [e["label"] for e in subset]
    assert (
        len(labels) == len(set(labels)) == dataset.num_examples("test", max_per_class=1)
    )
    first_of_class = {}
    for example in everything:
        first_of_class.setdefault(example["label"], example["id"])
    assert [e["id"] for e in subset] == [
        e["id"] for e in everything if first_of_class[e["label"]] == e["id"]
    ]
    np.testing.assert_array_equal(subset[0]["image"], everything[0]["image"])


def test_tfds_grayscale_becomes_rgb_and_fingerprints_differ(mock_tfds):
    mnist = load_dataset("tfds:mnist", data_dir=str(mock_tfds))
    assert mnist.as_dataset("test").element_spec["image"].shape == [28, 28, 3]
    image = next(mnist.as_numpy_iterator("test"))["image"]
    np.testing.assert_array_equal(image[..., 0], image[..., 1])
    cifar = load_dataset("tfds:cifar10", data_dir=str(mock_tfds))
    assert mnist.fingerprint() != cifar.fingerprint()
    assert cifar.fingerprint() == load_dataset("tfds:cifar10").fingerprint()


def test_tfds_wrong_keys_are_explained(mock_tfds):
    from zoo.data.tfds_dataset import TfdsDataset

    with pytest.raises(DatasetError, match="no image feature 'img'.*image_key"):
        TfdsDataset("cifar10", data_dir=str(mock_tfds), image_key="img")
    with pytest.raises(DatasetError, match="'id' of 'cifar10' is not a ClassLabel"):
        TfdsDataset("cifar10", data_dir=str(mock_tfds), label_key="id")


def test_tfds_missing_data_explains_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_dataset("tfds:cifar10", data_dir=str(tmp_path))
    message = str(error.value)
    assert "not prepared" in message and str(tmp_path) in message
    assert '"tfds build cifar10"' in message
    assert "tfds.load('cifar10')" in message
    assert "--data_dir" in message
    assert not any(tmp_path.iterdir())  # Nothing was downloaded.


def test_tfds_unknown_name_and_version(tmp_path):
    with pytest.raises(DatasetError, match="unknown TFDS dataset 'cifar1'.*cifar10"):
        load_dataset("tfds:cifar1", data_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="cannot open TFDS dataset 'cifar10:9.9.9'"):
        load_dataset("tfds:cifar10:9.9.9", data_dir=str(tmp_path))


# Preprocessing.


def test_eval_preprocess_shape_and_range():
    image = _pixels(3, (37, 50, 3))
    output = eval_preprocess(image, 24)
    assert output.shape == (24, 24, 3) and output.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(output)) <= float(tf.reduce_max(output)) <= 1.0


def test_eval_preprocess_full_crop_of_a_square_is_a_resize():
    image = _pixels(4, (40, 40, 3))
    expected = tf.image.resize(image / 255, [16, 16], antialias=True)
    np.testing.assert_allclose(eval_preprocess(image, 16, 1.0), expected, atol=1e-6)


def test_eval_preprocess_crops_the_center():
    image = _pixels(5, (20, 40, 3))
    # The shorter side is already 20: no resize, only the central columns.
    np.testing.assert_allclose(
        eval_preprocess(image, 20, 1.0), image[:, 10:30] / 255, atol=1e-6
    )
    # 0.5 keeps the central half: resize to 40 x 80, crop 20 x 20.
    assert eval_preprocess(image, 20, 0.5).shape == (20, 20, 3)
    with pytest.raises(ValueError, match="crop_fraction"):
        eval_preprocess(image, 20, 1.5)


def test_train_preprocess_is_deterministic_with_a_seed():
    image = _pixels(6, (30, 45, 3))
    seed = tf.constant([1, 2], tf.int64)
    first = train_preprocess(image, 16, seed=seed)
    assert first.shape == (16, 16, 3) and first.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(first)) <= float(tf.reduce_max(first)) <= 1.0
    np.testing.assert_array_equal(first, train_preprocess(image, 16, seed=seed))
    others = [train_preprocess(image, 16, seed=[s, 0]) for s in range(5)]
    assert any(not np.array_equal(first, other) for other in others)
    assert train_preprocess(image, 16).shape == (16, 16, 3)  # Stateful ops.


def test_train_preprocess_falls_back_to_the_center_crop():
    image = _pixels(7, (24, 24, 3))
    # The only allowed window is the whole image: the sampler "fails".
    output = train_preprocess(
        image,
        12,
        seed=[3, 4],
        area_range=(1.0, 1.0),
        aspect_ratio_range=(1.0, 1.0),
        flip=False,
    )
    np.testing.assert_allclose(output, eval_preprocess(image, 12), atol=1e-6)


def test_preprocessing_in_a_tf_data_map_with_dynamic_shapes(folder):
    dataset = load_dataset(str(folder)).as_dataset("test")
    seeds = tf.data.Dataset.random(seed=0).batch(2)
    train = tf.data.Dataset.zip(dataset, seeds).map(
        lambda e, s: train_preprocess(e["image"], 8, seed=s)
    )
    evaluation = dataset.map(lambda e: eval_preprocess(e["image"], 8))
    assert train.element_spec == tf.TensorSpec([8, 8, 3], tf.float32)
    assert evaluation.element_spec == tf.TensorSpec([8, 8, 3], tf.float32)
    assert len(list(train)) == len(list(evaluation)) == 4
    np.testing.assert_array_equal(np.stack(list(train)), np.stack(list(train)))


# Real data from ../shared/data.


@pytest.mark.parametrize(
    "folder_name, splits, test_split, train_size, shape",
    [
        ("cifar10", ("test", "train"), "test", 50000, (32, 32, 3)),
        ("imagenette", ("train", "val"), "val", 9469, (224, 224, 3)),
    ],
)
def test_real_image_folder(
    shared_data, monkeypatch, folder_name, splits, test_split, train_size, shape
):
    monkeypatch.chdir(REPO_ROOT)
    spec = os.path.relpath(shared_data / folder_name, REPO_ROOT)
    dataset = load_dataset(spec)
    assert dataset.name == f"imagefolder:{os.path.abspath(spec)}"
    assert dataset.num_classes == 10
    assert dataset.splits == splits
    assert (dataset.train_split, dataset.test_split) == ("train", test_split)
    assert dataset.num_examples("train") == train_size
    for split in splits:
        assert dataset.num_examples(split, max_per_class=3) == 30
        examples = _examples(dataset, split, max_per_class=3)
        assert np.bincount([e["label"] for e in examples]).tolist() == [3] * 10
        for example in examples:
            assert example["image"].dtype == np.uint8
            assert example["image"].ndim == 3 and example["image"].shape[2] == 3
            assert example["id"].startswith(f"{split}/")
        assert examples[0]["image"].shape == shape
