"""The benchmark as a library: the run request (one description of a run,
its flags shared by zoo-benchmark and zoo-submit), every module option
round-tripping through request, bundle and verification, and the Python API
(the README's "From Python" block) from a plain install outside the
repository."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from benchmark.cli.run_flags import FLAG_SPECS, OPTION_FIELDS
from benchmark.results import bundle as bundles
from benchmark.runner.request import ModuleOptions, RunRequest
from benchmark.runner.submissions import bundle_request
from tests.conftest import source_copy

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
# A value for every module option, as the module below needs them. The
# normalisation is named; --value_range, its linear alternative (one or the
# other), round-trips in the first test.
OPTIONS = {
    "image_size": 16,
    "signature": "embed",
    "output": "pooled",
    "value_range": None,
    "input_normalization": "0_255",
}


def test_every_module_option_has_a_flag_and_round_trips_through_json():
    assert set(OPTION_FIELDS) <= {name for name, _, _ in FLAG_SPECS}
    assert set(OPTIONS) == set(OPTION_FIELDS)  # a new option needs a value here
    request = RunRequest(
        module="m", options=ModuleOptions(**OPTIONS), overrides=("knn.k=3",),
        datasets=("digits_5to9",), evaluations=("knn",), max_per_class=5,
    )  # fmt: skip
    text = json.dumps(request.to_dict())
    assert RunRequest.from_dict(json.loads(text)) == request
    assert request.replace(output="other").options.output == "other"
    ranged = request.replace(input_normalization=None, value_range="0,255")
    assert RunRequest.from_dict(json.loads(json.dumps(ranged.to_dict()))) == ranged
    with pytest.raises(ValueError, match="unknown fields: colour"):
        RunRequest.from_dict({**request.to_dict(), "colour": 1})


def test_zoo_benchmark_and_zoo_submit_share_the_run_flags():
    for entry, without in (
        ("benchmark.cli.benchmark", ()),
        ("benchmark.cli.submit", ("leaderboard",)),  # a submission is a bundle
    ):
        out = subprocess.run(
            [sys.executable, "-m", entry, "--help"],
            capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        for name, _, _ in FLAG_SPECS:
            assert (f"--{name}:" in out.stdout) != (name in without), (entry, name)


class DictModule(tf.Module):
    """Needs every option: only a named signature, a dict of two outputs,
    pixels in [0, 255] and one input size."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([3, 6], seed=[3, 4]))

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32)])
    def embed(self, images):
        x = tf.reduce_mean(images / 255.0, axis=[1, 2])
        pooled = tf.nn.relu(tf.matmul(x, self.w))
        return {"pooled": pooled, "other": tf.zeros_like(pooled)}


@pytest.mark.slow  # zoo-submit and a verification re-run, both sandboxed
def test_a_module_needing_every_option_is_submitted_and_verified(tmp_path):
    module = DictModule()
    path = str(tmp_path / "module")
    tf.saved_model.save(module, path, signatures={"embed": module.embed})
    out = tmp_path / "bundle"
    flags = [f"--{k}={v}" for k, v in OPTIONS.items() if v is not None]
    submit = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.submit", f"--module={path}",
         "--local", "--config=smoke", "--evaluations=knn", f"--bundle={out}",
         f"--cache_dir={tmp_path / 'cache'}", *flags],
        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert submit.returncode == 0, submit.stderr[-2000:]
    b = bundles.read(str(out))
    stored = bundle_request(b)
    assert dataclasses.asdict(stored.options) == OPTIONS
    assert stored.module == path and stored.evaluations == ("knn",)
    contract = json.loads(b.rows[0]["protocol"])["input"]
    assert contract["output"] == "pooled"
    assert contract["input_normalization"] == "0_255"
    verify = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.leaderboard", "verify", str(out),
         "--rerun=all"],
        capture_output=True, text=True, env=ENV, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout[-2000:] + verify.stderr[-2000:]
    assert "re-running knn" in verify.stdout + verify.stderr


def _readme_block():
    text = open(os.path.join(REPO, "README.md")).read()
    return text.split("## From Python", 1)[1].split("```python", 1)[1].split("```")[0]


@pytest.mark.slow  # a non-editable install, then the block's two runs
def test_the_readme_python_block_runs_from_a_plain_install(tmp_path):
    site = tmp_path / "site"
    source = source_copy(tmp_path / "source")  # not the checkout's build/
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    work = tmp_path / "anywhere"
    work.mkdir()
    script = (
        "import benchmark, export, zoo\n"
        f"assert benchmark.__file__.startswith({str(site)!r}), benchmark.__file__\n"
        + _readme_block()
    )
    env = {**ENV, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, env=env, cwd=work, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| knn" in run.stdout and "resnet50_cosine_softmax" in run.stdout
    assert (work / "tiny.csv").exists()


def test_evaluate_leaves_process_wide_state_as_it_was(tmp_path):
    import keras

    import benchmark

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))
    environ = dict(os.environ)
    policy = keras.config.dtype_policy().name
    cwd = os.listdir(os.getcwd())
    results = benchmark.evaluate(
        model, evaluations=["knn"], sandbox="off", report=None,
        max_module_mb=64, download_deadline_s=10,
    )  # fmt: skip
    assert results.rows and results.rows[0]["handle"].startswith("in-memory:")
    assert dict(os.environ) == environ
    assert keras.config.dtype_policy().name == policy
    assert os.listdir(os.getcwd()) == cwd  # no cache or leaderboard by default


@pytest.mark.slow  # trains a tiny digits model for one epoch
def test_training_from_python_leaves_seeds_and_determinism_as_they_were(tmp_path):
    import random

    import numpy as np
    from tensorflow.python.framework import config as tf_config

    import zoo

    random.seed(7)
    np.random.seed(7)
    before = (random.getstate(), np.random.get_state()[1].tolist())
    determinism = tf_config.is_op_determinism_enabled()
    result = zoo.train(
        "digits", workdir=str(tmp_path / "run"), epochs=1, deterministic=True,
        width_multiplier=0.0625, report=lambda line: None,
    )  # fmt: skip
    assert result.model is not None
    assert (random.getstate(), np.random.get_state()[1].tolist()) == before
    assert tf_config.is_op_determinism_enabled() == determinism
    net = zoo.create_model("resnet50", num_classes=3, image_size=32,
                           width_multiplier=0.0625)  # fmt: skip
    assert net.output["logits"].shape[-1] == 3


def test_export_pull_fetches_a_catalog_module_from_python(tmp_path):
    """export.pull: a pinned catalog entry served on 127.0.0.1 is downloaded,
    verified, scanned and cached; the second call is served from the cache."""
    import hashlib

    import export
    from export.archive import pack_module
    from tests.test_catalog import ModuleServer

    module = tf.Module()
    module.__call__ = tf.function(
        lambda images: tf.reduce_mean(images, axis=[1, 2]),
        input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "module"))
    archive = tmp_path / "tiny.tar.gz"
    pack_module(str(tmp_path / "module"), str(archive))
    body = archive.read_bytes()
    server = ModuleServer({"/tiny.tar.gz": body})
    entry = {
        "name": "tiny", "source": "zoo", "arch": "resnet50", "objective": "softmax",
        "seed": 0, "handle": server.url("/tiny.tar.gz"),
        "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
        "accuracy": 0.5,
    }  # fmt: skip
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"catalog_version": 1, "entries": [entry]}))
    lines = []
    try:
        first = export.pull("tiny", cache_dir=str(tmp_path / "hub"),
                            catalog=str(catalog), report=lines.append)  # fmt: skip
        server.stop()  # the second pull needs no network
        again = export.pull("tiny", cache_dir=str(tmp_path / "hub"),
                            catalog=str(catalog), report=lines.append)  # fmt: skip
    finally:
        server.stop()
    assert first == again and os.path.isfile(os.path.join(first, "saved_model.pb"))
    assert any("cached and verified" in line for line in lines)
