"""Trainer: the learning-rate formula, which weights get decay, the EMA, the
holdout, resumable checkpoints, replica equivalence and one-line errors."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import write_tfds_metadata
from zoo import data as zoo_data
from zoo.configs import list_configs, load_config
from zoo.distribute import StrategyError, create_strategy
from zoo.ema import ExponentialMovingAverage
from zoo.input_pipeline import _is_holdout, split_train_holdout
from zoo.models import create_classifier
from zoo.models.layers import BatchNormalization, Conv2D
from zoo.objectives import create_objective
from zoo.trainer import (
    TrainError,
    WarmupExponentialDecay,
    check_replicas,
    decayed_variables,
    load_trained_model,
    train_and_evaluate,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = lambda line: None  # noqa: E731
# A few seconds per epoch on 2 CPU cores: 150 digits, 4 steps of 32 per epoch.
TINY_FLAGS = [
    "--config=digits",
    "--width_multiplier=0.0625",
    "--max_per_class=30",
    "--global_batch_size=32",
]


def tiny_config(**changes):
    """Returns the digits config shrunk to seconds per epoch."""
    small = dict(width_multiplier=0.0625, max_per_class=30, global_batch_size=32)
    return load_config("digits").replace(**{**small, **changes})


def run_python(warm, code, *args, timeout=600):
    """Runs `code` in the warm Python of tests/warm.py, whose forks start
    with TensorFlow's runtime not yet up (logical devices must be configured
    before it starts); returns the CompletedProcess."""
    return warm.run_code(textwrap.dedent(code), *args, timeout=timeout)


def train_cli(workdir, *flags, **popen):
    """Starts zoo-train on the tiny digits config; returns the Popen."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "zoo.main", *TINY_FLAGS, f"--workdir={workdir}", *flags],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def h5_arrays(path):
    """Returns {dataset path: array} of every array in an .h5 file."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()])
                if isinstance(obj, h5py.Dataset)
                else None
            )
        )
    return arrays


def test_learning_rate_follows_warmup_then_per_epoch_decay():
    # The paper: peak 1.6 (0.1 x 4096 / 256), 10 warm-up epochs, x0.975 per epoch.
    steps_per_epoch = 312
    schedule = WarmupExponentialDecay(1.6, 10 * steps_per_epoch, steps_per_epoch, 0.975)
    for step, expected in [
        (0, 0.0),
        (156, 1.6 * 156 / 3120),
        (3119, 1.6 * 3119 / 3120),
        (3120, 1.6),
        (3120 + 311, 1.6),
        (3120 + 312, 1.6 * 0.975),
        (3120 + 50 * 312 + 7, 1.6 * 0.975**50),
    ]:
        assert math.isclose(float(schedule(step)), expected, rel_tol=1e-5, abs_tol=1e-7)


def test_weight_decay_skips_batch_norm_parameters_and_biases():
    for name in ("softmax", "cosine_softmax"):
        model = create_classifier(
            "resnet50", create_objective(name), 5, width_multiplier=0.0625
        )
        decayed = decayed_variables(model)
        paths = [v.path for v in decayed]
        assert all(p.endswith("kernel") for p in paths)
        assert not any("_bn" in p or "gamma" in p or "beta" in p for p in paths)
        assert "logits/kernel" in paths
        # every conv (53) plus the head kernel
        assert len(decayed) == 54


def test_ema_matches_a_hand_computation():
    a = tf.Variable([1.0, -2.0])
    b = tf.Variable(3.0)
    counter = tf.Variable(0, dtype=tf.int64)  # not a float: not averaged
    ema = ExponentialMovingAverage([a, b, counter], decay=0.9, warmup=False)
    assert len(ema.shadows) == 2
    expected_a, expected_b = np.array([1.0, -2.0]), 3.0
    for value_a, value_b in [([2.0, 0.0], 1.0), ([4.0, 4.0], -1.0), ([0.0, 1.0], 5.0)]:
        a.assign(value_a)
        b.assign(value_b)
        ema.update()
        expected_a = 0.9 * expected_a + 0.1 * np.array(value_a)
        expected_b = 0.9 * expected_b + 0.1 * value_b
    np.testing.assert_allclose(ema.shadows[0].numpy(), expected_a, rtol=1e-6)
    np.testing.assert_allclose(ema.shadows[1].numpy(), expected_b, rtol=1e-6)
    # swap() exchanges weights and averages; a second swap() undoes it
    ema.swap()
    np.testing.assert_allclose(a.numpy(), expected_a, rtol=1e-6)
    np.testing.assert_allclose(ema.shadows[0].numpy(), [0.0, 1.0])
    ema.swap()
    np.testing.assert_allclose(a.numpy(), [0.0, 1.0])


def test_ema_warmup_uses_the_num_updates_rule():
    v = tf.Variable(0.0)
    ema = ExponentialMovingAverage([v], decay=0.9999, warmup=True)
    shadow = 0.0
    for t, value in enumerate([10.0, 20.0, 30.0]):
        v.assign(value)
        decay = ema.update()
        assert math.isclose(float(decay), min(0.9999, (1 + t) / (10 + t)), rel_tol=1e-6)
        shadow = float(decay) * shadow + (1 - float(decay)) * value
    assert math.isclose(float(ema.shadows[0].numpy()), shadow, rel_tol=1e-6)


def test_holdout_is_a_fixed_fraction_chosen_by_example_id():
    ids = tf.constant([f"train/x/{i:05d}.jpg" for i in range(5000)])
    held = _is_holdout({"id": ids}, 0.1).numpy()
    assert abs(held.mean() - 0.1) < 0.015
    np.testing.assert_array_equal(held, _is_holdout({"id": ids}, 0.1).numpy())


def _ids(dataset):
    return [x.decode() for x in dataset.map(lambda e: e["id"]).as_numpy_iterator()]


def test_holdout_and_training_sets_are_disjoint_and_cover_the_split():
    config = load_config("digits")
    dataset = zoo_data.load_dataset(config.dataset)
    data = split_train_holdout(config, dataset)
    train, holdout = _ids(data.train), _ids(data.holdout)
    assert len(train) == data.num_train and len(holdout) == data.num_holdout
    assert not set(train) & set(holdout)
    assert data.num_train + data.num_holdout == dataset.num_examples("train")


def test_holdout_examples_holds_out_exactly_the_first_n():
    config = load_config("digits").replace(holdout_examples=37)
    dataset = zoo_data.load_dataset(config.dataset)
    data = split_train_holdout(config, dataset)
    everything = _ids(dataset.as_dataset("train"))
    assert _ids(data.holdout) == everything[:37]
    assert _ids(data.train) == everything[37:]
    assert (data.num_holdout, data.num_train) == (37, len(everything) - 37)


def test_imagenet_holdout_is_the_first_50046_training_images_by_split_slicing(
    tmp_path,
):
    import tensorflow_datasets as tfds

    config = load_config("imagenet_resnet50")
    sizes = {"train": 1281167, "validation": 50000}
    write_tfds_metadata(tmp_path, "imagenet2012", sizes)
    policy = tfds.testing.MockPolicy.USE_FILES
    with tfds.testing.mock_data(num_examples=12, policy=policy, data_dir=str(tmp_path)):
        dataset = zoo_data.load_dataset("tfds:imagenet2012", data_dir=str(tmp_path))
        data = split_train_holdout(config, dataset)
        assert (data.num_holdout, data.num_train) == (50_046, 1_281_167 - 50_046)
        assert dataset.num_examples("train[:50046]") == 50_046
        assert len(_ids(data.holdout)) == 12  # the mock's records, decodable
    assert config.global_batch_size == 4096 and config.image_size == 224


def test_missing_imagenet_manual_directory_says_how_to_get_the_files(tmp_path):
    with pytest.raises(zoo_data.DatasetError) as error:
        zoo_data.load_dataset(
            "tfds:imagenet2012",
            data_dir=str(tmp_path / "tfds"),
            manual_dir=str(tmp_path / "manual"),
        )
    message = str(error.value)
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert "image-net.org" in message and str(tmp_path / "manual") in message
    with pytest.raises(zoo_data.DatasetError, match="--manual_dir"):
        zoo_data.load_dataset("tfds:imagenet2012", data_dir=str(tmp_path / "tfds"))


def test_a_global_batch_larger_than_the_data_is_refused(tmp_path):
    config = load_config("digits").replace(max_per_class=4, global_batch_size=64)
    with pytest.raises(TrainError, match="fewer than one global batch"):
        train_and_evaluate(config, str(tmp_path / "run"), report=QUIET)
    assert not (tmp_path / "run").exists()


def test_a_global_batch_must_split_evenly_over_replicas():
    config = tiny_config(global_batch_size=30, eval_batch_size=60)
    check_replicas(config, 3)
    check_replicas(config, 2)
    with pytest.raises(TrainError, match="global_batch_size 30 is not divisible by"):
        check_replicas(config, 4)


def test_unreachable_tpu_address_is_a_one_line_error():
    with pytest.raises(StrategyError, match="unreachable"):
        create_strategy("tpu:grpc://127.0.0.1:1")
    with pytest.raises(StrategyError, match="unknown strategy"):
        create_strategy("gpu_cluster")


def test_every_config_loads_and_names_its_command():
    for name in list_configs():
        config = load_config(name)
        module = __import__(f"zoo.configs.{name}", fromlist=["get_config"])
        assert "zoo-train --config=" + name in module.__doc__, name
        assert "Expected" in module.__doc__, name
        assert config.global_batch_size > 0


# The tests of one 2-epoch run share a worker (make test: --dist loadgroup),
# so it is trained once; they run in this order (the re-run extends it last).
ON_TWO_EPOCH_RUN = pytest.mark.xdist_group("two_epoch_run")


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory):
    """A finished 2-epoch tiny run: (workdir, TrainResult)."""
    workdir = str(tmp_path_factory.mktemp("two_epochs"))
    result = train_and_evaluate(tiny_config(epochs=2), workdir, report=QUIET)
    return workdir, result


@ON_TWO_EPOCH_RUN
def test_a_run_writes_checkpoints_history_tensorboard_and_the_best_weights(
    two_epoch_run,
):
    workdir, result = two_epoch_run
    history = json.load(open(os.path.join(workdir, "history.json")))
    assert [h["epoch"] for h in history] == [1, 2]
    for h in history:
        assert math.isfinite(h["loss"]) and 0 <= h["top1"] <= h["top5"] <= 1
        assert h["count"] == result.info["num_holdout"]
    assert result.info["best_epoch"] in (1, 2)
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    events = tf.io.gfile.glob(os.path.join(workdir, "tensorboard", "events.*"))
    tags = {
        v.tag
        for e in tf.compat.v1.train.summary_iterator(events[0])
        for v in e.summary.value
    }
    assert {"train/loss", "holdout/top1", "holdout/top5"} <= tags


@ON_TWO_EPOCH_RUN
def test_holdout_accuracy_is_that_of_the_exported_ema_weights(two_epoch_run):
    workdir, result = two_epoch_run
    model, objective, info = load_trained_model(workdir)
    config = tiny_config(epochs=2)
    dataset = zoo_data.load_dataset(config.dataset)
    data = split_train_holdout(config, dataset)
    correct = 0
    for example in data.holdout.as_numpy_iterator():
        image = zoo_data.eval_preprocess(example["image"], config.image_size)
        scores = objective.scores(model(image[None], training=False)["logits"])
        correct += int(np.argmax(scores[0]) == example["label"])
    assert correct / data.num_holdout == pytest.approx(info["holdout"]["top1"])
    # ... and they are the EMA, not the raw weights of the last checkpoint
    raw = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    )
    kernel = model.get_layer("stem_conv").kernel.numpy()
    raw_kernels = [  # the stem kernel in the checkpoint, not its EMA or momentum
        raw.get_tensor(key)
        for key, shape in raw.get_variable_to_shape_map().items()
        if tuple(shape) == kernel.shape
        and "_variables/" not in key
        and "shadows" not in key
    ]
    assert raw_kernels and all(not np.allclose(r, kernel) for r in raw_kernels)


@ON_TWO_EPOCH_RUN
def test_rerunning_resumes_and_extends_a_run(two_epoch_run, tmp_path):
    workdir, _ = two_epoch_run
    lines = []
    result = train_and_evaluate(tiny_config(epochs=3), workdir, report=lines.append)
    assert any("resuming at step" in line for line in lines)
    assert [h["epoch"] for h in result.info["history"]] == [1, 2, 3]
    assert len(result.step_losses) == result.info["steps_per_epoch"]  # one epoch


@ON_TWO_EPOCH_RUN
def test_a_workdir_of_another_config_is_refused(two_epoch_run):
    workdir, _ = two_epoch_run
    with pytest.raises(TrainError, match="another config.*objective"):
        train_and_evaluate(
            tiny_config(objective="cosine_softmax"), workdir, report=QUIET
        )


@ON_TWO_EPOCH_RUN
def test_a_corrupt_checkpoint_is_a_one_line_error(two_epoch_run, tmp_path):
    workdir = str(tmp_path / "run")
    shutil.copytree(two_epoch_run[0], workdir)  # a real run's files, corrupted
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    assert latest.startswith(workdir)  # the copy's, not the shared run's
    with open(latest + ".index", "r+b") as f:
        f.seek(10)
        f.write(b"\xff" * 64)
    with pytest.raises(TrainError, match="corrupt or does not match"):
        train_and_evaluate(tiny_config(epochs=4), workdir, report=QUIET)
    with open(os.path.join(workdir, "model.weights.h5"), "wb") as f:
        f.write(b"not hdf5")
    with pytest.raises(TrainError, match="corrupt or does not match its config"):
        load_trained_model(workdir)


@pytest.mark.parametrize(
    "changes",
    [
        {"precision": "mixed_bfloat16"},
        {"precision": "mixed_float16"},
        {"jit_compile": True},
        {"fused_batch_norm": False},
        {"matmul_pointwise_conv": False},
    ],
    ids=["bfloat16", "float16_loss_scaling", "xla", "keras_batch_norm", "keras_conv"],
)
def test_mixed_precision_and_xla_train(tmp_path, changes):
    """Each precision, XLA, and either kernel for batch norm and for 1x1
    convolutions train (the fast kernels, the default, with the others)."""
    result = train_and_evaluate(
        tiny_config(epochs=1, **changes), str(tmp_path / "run"), report=QUIET
    )
    assert result.info["precision"] == changes.get("precision", "float32")
    assert result.info["jit_compile"] == changes.get("jit_compile", False)
    fused = [
        layer.fused
        for layer in result.model._flatten_layers()
        if isinstance(layer, BatchNormalization)
    ]
    assert len(fused) == 53 and set(fused) == {changes.get("fused_batch_norm", True)}
    matmul = [
        layer.as_matmul
        for layer in result.model._flatten_layers()
        if isinstance(layer, Conv2D) and layer.kernel_size == (1, 1)
    ]
    assert len(matmul) == 36  # on CPU by default
    assert set(matmul) == {changes.get("matmul_pointwise_conv", True)}
    assert result.info["matmul_pointwise_conv"] == set(matmul).pop()
    assert all(math.isfinite(x) for x in result.step_losses)
    assert result.step_losses[-1] < result.step_losses[0]


@pytest.mark.slow
def test_one_and_two_replicas_give_the_same_loss_curve(warm, tmp_path):
    # Replicas with synchronised BN see together exactly the global batch one
    # replica sees, so the loss curve agrees until float rounding (max-pool
    # ties on digits' flat backgrounds) makes the trajectories drift apart.
    code = """
        import json, os, sys
        from zoo.distribute import create_strategy
        two = create_strategy("cpu:2")
        import tensorflow as tf
        from zoo.configs import load_config
        from zoo.trainer import train_and_evaluate
        config = load_config("digits").replace(
            epochs=2, width_multiplier=0.0625, steps_per_call=5, sync_bn=True,
            base_learning_rate=0.02, warmup_epochs=0.0, deterministic=True)
        one = tf.distribute.OneDeviceStrategy("/cpu:0")
        out = {}
        for name, strategy in (("one", one), ("two", two)):
            r = train_and_evaluate(config, os.path.join(sys.argv[1], name),
                                   strategy=strategy, report=lambda s: None)
            out[name] = {"losses": r.step_losses, "replicas": r.info["replicas"],
                         "history": r.info["history"]}
        print("RESULT" + json.dumps(out))
    """
    result = run_python(warm, code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.split("RESULT")[-1])
    assert (out["one"]["replicas"], out["two"]["replicas"]) == (1, 2)
    one, two = np.array(out["one"]["losses"]), np.array(out["two"]["losses"])
    assert len(one) == len(two) == 20
    # A wrong global-batch scaling (e.g. averaged instead of summed gradients)
    # changes the loss by ~1e-2 from the second step on.
    np.testing.assert_allclose(one[:5], two[:5], atol=1e-4)
    # Later steps drift chaotically, by how much depends on the CPU's kernels:
    # within 0.05 on one machine, up to 0.086 by step 12 on an AVX-512 one
    # (the landed code, unchanged). Both curves must still fall alike.
    np.testing.assert_allclose(one, two, atol=0.15)
    assert one[-5:].mean() < one[:5].mean() - 0.2
    assert two[-5:].mean() < two[:5].mean() - 0.2
    for h1, h2 in zip(out["one"]["history"], out["two"]["history"]):
        assert h1["count"] == h2["count"]
        assert abs(h1["loss"] - h2["loss"]) < 0.06


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, warm):
    # 3 epochs of 4 steps, a checkpoint every 2: killed once the step-6 one
    # (mid-epoch 2) is on disk. The killed run is a real process; the resumed
    # and the uninterrupted runs are the same command in the warm Python.
    flags = [
        "--epochs=3",
        "--steps_per_call=1",
        "--checkpoint_every_steps=2",
        "--deterministic",
    ]
    whole, parted = tmp_path / "whole", tmp_path / "parted"
    process = train_cli(parted, *flags)
    state = parted / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if state.exists() and "ckpt-6" in state.read_text():
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = warm.run("zoo.main", *TINY_FLAGS, f"--workdir={parted}", *flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout
    resumed_at = int(out.split("resuming at step ")[1].split()[0].rstrip(")"))
    assert 6 <= resumed_at < 12
    uninterrupted = warm.run("zoo.main", *TINY_FLAGS, f"--workdir={whole}", *flags)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    a = h5_arrays(whole / "model.weights.h5")
    b = h5_arrays(parted / "model.weights.h5")
    assert a.keys() == b.keys() and len(a) > 100
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    history_a = json.loads((whole / "history.json").read_text())
    history_b = json.loads((parted / "history.json").read_text())
    assert [h["loss"] for h in history_a] == [h["loss"] for h in history_b]


def test_cli_errors_are_one_line(tmp_path, warm):
    cases = [
        (["--strategy=cpu:2", "--global_batch_size=33"], "not divisible by the 2"),
        (["--strategy=tpu:grpc://127.0.0.1:1"], "unreachable"),
        (["--dataset=tfds:imagenet2012", f"--data_dir={tmp_path}"], "--manual_dir"),
    ]
    for flags, expected in cases:
        run = warm.run("zoo.main", *TINY_FLAGS, f"--workdir={tmp_path / 'run'}", *flags)
        errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
        assert run.returncode == 2 and len(errors) == 1, run.stderr[-2000:]
        assert expected in errors[0]
    assert not (tmp_path / "run").exists()
