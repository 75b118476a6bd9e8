"""ImageNet-OOD: TFDS loaders (mocked), 200-class masking on a module with
known logits, mCE by hand, and the in-memory corruption generator."""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from benchmark.configs.config import BenchmarkConfig, evaluation
from benchmark.data import corruptions
from benchmark.data import ood as ood_data
from benchmark.data.transfer import load_benchmark_dataset
from benchmark.evaluators.imagenet_ood import (
    mean_corruption_error,
    top1_predictions,
)
from benchmark.modules.loading import ModuleError, load_module
from benchmark.runner.harness import run_benchmark
from tests.conftest import mock_prepared_tfds, save_module_without_logits
from zoo.data import DatasetError

# A class of ImageNet-A's and -R's 200, and one outside both lists.
IN_SUBSET, OUT_OF_SUBSET = 6, 0


def _fixed_logits_module(path, num_logits, scores):
    """Writes a SavedModel whose `logits` signature returns the same logits
    for every image ({index: value}, 0 elsewhere) and returns its path."""
    logits = np.zeros(num_logits, np.float32)
    for index, value in scores.items():
        logits[index] = value
    module = tf.Module()
    module.fixed = tf.Variable(logits, trainable=False)
    spec = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def logits_fn(images):
        batch = tf.shape(images)[0]
        return {"logits": tf.tile(module.fixed[None], [batch, 1])}

    module.logits = logits_fn
    tf.saved_model.save(module, str(path), signatures={"logits": logits_fn})
    (path / "metadata.json").write_text(json.dumps({"image_size": 16}))
    return str(path)


def _tfds_sets(names):
    """Returns {TFDS name: {split: size}} of OOD set names, for the mock."""
    sets = [ood_data.find_set(name) for name in names]
    return {s.tfds_name: {s.split: 4} for s in sets}


def _ood_config(**settings):
    """Returns a config running only imagenet_ood with `settings`."""
    return BenchmarkConfig(
        name="ood_test", evaluations=(evaluation("imagenet_ood", **settings),)
    )


def _run(config, module, data_dir):
    """Returns {(dataset, metric): row} of a harness run."""
    rows = run_benchmark(config, module, data_dir=str(data_dir), report=print)
    return {(r["dataset"], r["metric"]): r for r in rows}


# ------------------------------------------------------------------- loaders


@pytest.mark.parametrize("name", [*ood_data.OOD_SETS, "imagenet2012_corrupted/fog_3"])
def test_sets_load_by_name_from_mocked_tfds(tmp_path, name):
    ood_set = ood_data.find_set(name)
    with mock_prepared_tfds(tmp_path, _tfds_sets([name]), labels=[3, 999, 7]):
        dataset = load_benchmark_dataset(name, data_dir=str(tmp_path))
        examples = list(dataset.as_numpy_iterator(ood_set.split))
    assert dataset.name == name and dataset.test_split == ood_set.split
    assert dataset.num_classes == 1000
    assert [e["label"] for e in examples] == [3, 999, 7]
    for example in examples:
        assert example["image"].dtype == np.uint8 and example["image"].shape[-1] == 3


def test_set_names():
    assert ood_data.OOD_SETS["imagenet_v2"].tfds_name == "imagenet_v2/matched-frequency"
    assert ood_data.corrupted_set("snow", 5).name == "imagenet2012_corrupted/snow_5"
    assert ood_data.find_set("imagenet2012_corrupted/snow_6") is None
    assert ood_data.find_set("imagenet_x") is None
    with pytest.raises(ValueError, match="unknown ImageNet-C corruption"):
        ood_data.corrupted_set("rain", 1)


def test_unprepared_set_is_a_one_line_error(tmp_path):
    with pytest.raises(DatasetError, match="tfds build imagenet_a") as error:
        load_benchmark_dataset("imagenet_a", data_dir=str(tmp_path))
    assert "\n" not in str(error.value)


def test_packaged_class_subsets(shared_data):
    shipped = json.loads(pathlib.Path(ood_data.SUBSETS_FILE).read_text())
    original = json.loads(
        (shared_data / "imagenet_meta" / "class_subsets_200.json").read_text()
    )
    assert shipped == original
    for name in ("imagenet_a", "imagenet_r"):
        indices = ood_data.class_subset(name)
        assert len(indices) == 200 == len(set(indices.tolist()))
    assert IN_SUBSET in ood_data.class_subset("imagenet_a")
    assert IN_SUBSET in ood_data.class_subset("imagenet_r")
    assert OUT_OF_SUBSET not in ood_data.class_subset("imagenet_a")
    assert OUT_OF_SUBSET not in ood_data.class_subset("imagenet_r")


# ------------------------------------------------------------------- metrics


def test_masked_argmax():
    logits = np.array([[5.0, 1.0, 3.0, 2.0], [0.0, 4.0, 1.0, 9.0]])
    np.testing.assert_array_equal(top1_predictions(logits), [0, 3])
    np.testing.assert_array_equal(top1_predictions(logits, np.array([1, 2])), [2, 1])


def test_mce_by_hand():
    errors = {
        "gaussian_noise": [0.5, 0.6, 0.7, 0.8, 0.9],  # mean 0.7
        "brightness": [0.2, 0.2, 0.3, 0.3, 0.5],  # mean 0.3
    }
    expected = (0.7 / 0.886428 + 0.3 / 0.564592) / 2
    assert mean_corruption_error(errors) == pytest.approx(expected, abs=1e-12)
    # AlexNet itself scores 1.0.
    alexnet = {c: [e] * 5 for c, e in ood_data.ALEXNET_ERRORS.items()}
    assert mean_corruption_error(alexnet) == pytest.approx(1.0)
    assert len(ood_data.ALEXNET_ERRORS) == 15 == len(corruptions.CORRUPTIONS)
    assert set(ood_data.ALEXNET_ERRORS) == set(corruptions.CORRUPTIONS)


# -------------------------------------------------- evaluator, known logits


def test_200_class_masking_on_known_logits(tmp_path):
    # Unmasked argmax: class 0 (score 9); masked to the 200: class 6 (score 5).
    path = _fixed_logits_module(
        tmp_path / "m", 1000, {OUT_OF_SUBSET: 9.0, IN_SUBSET: 5.0}
    )
    labels = [IN_SUBSET, IN_SUBSET, IN_SUBSET, OUT_OF_SUBSET]
    names = ("imagenet_a", "imagenet_r", "imagenet_v2")
    with mock_prepared_tfds(tmp_path / "tfds", _tfds_sets(names), labels):
        results = _run(_ood_config(sets=names), path, tmp_path / "tfds")
    assert float(results["imagenet_a", "top1"]["value"]) == 0.75
    assert float(results["imagenet_r", "top1"]["value"]) == 0.75
    assert float(results["imagenet_v2", "top1"]["value"]) == 0.25
    assert results["imagenet_a", "top1"]["test_size"] == "4"
    assert results["imagenet_a", "top1"]["split"] == "test"


def test_background_class_is_dropped_and_bad_counts_refused(tmp_path):
    # 1001 logits: index 1 is ImageNet class 0.
    path = _fixed_logits_module(tmp_path / "m1001", 1001, {1: 9.0, 0: 20.0})
    config = _ood_config(sets=("imagenet2012",))
    with mock_prepared_tfds(tmp_path / "tfds", _tfds_sets(["imagenet2012"]), [0, 0, 5]):
        results = _run(config, path, tmp_path / "tfds")
        assert float(results["imagenet2012", "top1"]["value"]) == pytest.approx(2 / 3)
        bad = _fixed_logits_module(tmp_path / "m10", 10, {0: 1.0})
        with pytest.raises(ModuleError, match="has 10 logits; the ImageNet"):
            _run(config, bad, tmp_path / "tfds")


def test_generated_imagenet_c_mce_matches_hand_value(tmp_path):
    # Constant logits: every corrupted image is predicted class 6, so the
    # error is 1/2 on every corruption and severity.
    path = _fixed_logits_module(tmp_path / "m", 1000, {IN_SUBSET: 1.0})
    config = _ood_config(
        sets=("imagenet_c",),
        corruptions=("gaussian_noise", "contrast"),
        imagenet_c_source="generated",
    )
    with mock_prepared_tfds(tmp_path / "tfds", _tfds_sets(["imagenet2012"]), [6, 1]):
        results = _run(config, path, tmp_path / "tfds")
    values = {metric: float(r["value"]) for (_, metric), r in results.items()}
    expected = (0.5 / 0.886428 + 0.5 / 0.853204) / 2
    assert values["mce"] == pytest.approx(expected)
    assert values["error_contrast"] == 0.5
    assert values["ce_gaussian_noise"] == pytest.approx(0.5 / 0.886428)
    assert ("generated-c:imagenet2012", "mce") in results


def test_tfds_imagenet_c_reads_every_corruption_and_severity(tmp_path):
    path = _fixed_logits_module(tmp_path / "m", 1000, {IN_SUBSET: 1.0})
    names = [ood_data.corrupted_set("fog", s).name for s in range(1, 6)]
    config = _ood_config(sets=("imagenet_c",), corruptions=("fog",))
    with mock_prepared_tfds(tmp_path / "tfds", _tfds_sets(names), [6, 6, 6, 2]):
        results = _run(config, path, tmp_path / "tfds")
    assert float(results["imagenet2012_corrupted", "error_fog"]["value"]) == 0.25
    mce = results["imagenet2012_corrupted", "mce"]
    assert float(mce["value"]) == pytest.approx(0.25 / 0.819324)
    # One missing severity fails before any work, naming it.
    with mock_prepared_tfds(tmp_path / "tfds2", _tfds_sets(names[:4]), [6]):
        with pytest.raises(DatasetError, match="imagenet2012_corrupted/fog_5"):
            _run(config, path, tmp_path / "tfds2")


def test_module_without_logits_is_skipped_with_a_note(tmp_path):
    save_module_without_logits(tmp_path)
    lines = []
    config = _ood_config(data="digits_0to4")
    assert run_benchmark(config, str(tmp_path), report=lines.append) == []
    assert any(
        line.startswith("[skip]") and "no 'logits' signature" in line for line in lines
    )
    with pytest.raises(ModuleError, match="no 'logits' signature"):
        load_module(str(tmp_path)).logits(tf.zeros([1, 8, 8, 3]))


def test_generated_corruptions_on_a_labelled_dataset(exported_module):
    config = _ood_config(
        data="digits_0to4",
        sets=("imagenet_c",),
        corruptions=("impulse_noise", "pixelate"),
        max_per_class=2,
    )
    rows = run_benchmark(config, exported_module[0], report=lambda line: None)
    metrics = {r["metric"]: float(r["value"]) for r in rows}
    assert set(metrics) == {
        "top1",
        "error_impulse_noise",
        "error_pixelate",
        "mean_corruption_error",
    }
    assert metrics["mean_corruption_error"] == pytest.approx(
        (metrics["error_impulse_noise"] + metrics["error_pixelate"]) / 2
    )
    generated = [r for r in rows if r["metric"] == "mean_corruption_error"][0]
    assert generated["dataset"] == "generated-c:digits_0to4"
    assert generated["test_size"] == "10"


# ------------------------------------------------------------- corruptions


def _real_images(shared_data, size):
    """Returns 3 CIFAR-10 (32 px) or Imagenette images at `size`, in [0, 1]."""
    if size == 32:
        paths = sorted((shared_data / "cifar10" / "test").glob("*/*.jpg"))[::2000]
    else:
        paths = sorted((shared_data / "imagenette" / "val").glob("*/*.JPEG"))[::1300]
    images = []
    for path in paths[:3]:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3)
        image = tf.image.convert_image_dtype(image, tf.float32)
        images.append(tf.image.resize(image, [size, size], antialias=True).numpy())
    return np.clip(np.stack(images), 0.0, 1.0)


@pytest.mark.parametrize("size", [32, 64])
def test_every_corruption_gets_worse_with_severity(shared_data, size):
    images = _real_images(shared_data, size)
    for name in corruptions.CORRUPTIONS:
        mse = [
            np.mean((corruptions.corrupt_images(images, name, s) - images) ** 2)
            for s in corruptions.SEVERITIES
        ]
        psnr = -10 * np.log10(np.maximum(mse, 1e-20))
        assert np.all(np.diff(psnr) < 0), f"{name} at {size} px: PSNR {psnr}"


def test_corruptions_are_deterministic_shaped_and_in_range():
    rng = np.random.RandomState(0)
    image = rng.uniform(size=(24, 20, 3)).astype(np.float32)
    for name in corruptions.CORRUPTIONS:
        a = corruptions.corrupt(image, name, 3, seed=7, index=2)
        b = corruptions.corrupt(image, name, 3, seed=7, index=2)
        assert a.shape == image.shape and a.dtype == np.float32, name
        assert 0.0 <= a.min() and a.max() <= 1.0, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    noisy = [corruptions.corrupt(image, "gaussian_noise", 1, seed=s) for s in (0, 1)]
    assert not np.array_equal(*noisy)


def test_corruption_arguments_are_checked():
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(ValueError, match="unknown corruption 'rain'"):
        corruptions.corrupt(image, "rain", 1)
    with pytest.raises(ValueError, match="severity must be one of 1..5"):
        corruptions.corrupt(image, "fog", 6)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        corruptions.corrupt(np.zeros((8, 8)), "fog", 1)


def test_kernels_are_normalised():
    assert corruptions.disk_kernel(3.0, 0.5).sum() == pytest.approx(1.0)
    kernel = corruptions.motion_kernel(5.0, 2.0, 0.0)
    assert kernel.sum() == pytest.approx(1.0)
    # A horizontal one-sided kernel: nothing left of or above/below the centre.
    centre = kernel.shape[0] // 2
    assert kernel[:, :centre].sum() == 0 and kernel[centre].sum() == pytest.approx(1.0)
