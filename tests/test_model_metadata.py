"""Model metadata and protocol fingerprints on every row: parameter counts
and multiply-accumulates against published and independent counts, the
columns every measured row carries, and rankings that never mix
fingerprints (zoo-leaderboard --strict)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import benchmark
from benchmark.modules import cost
from benchmark.modules import loading as modules
from benchmark.report import views
from benchmark.results import fingerprint, leaderboard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESNET50_PARAMS = 25_557_032  # torchvision's and Keras's published count
METADATA = ("params", "feature_dim", "image_size", "gmacs", "module_mb",
            "images_per_s", "throughput_batch", "fingerprint")  # fmt: skip


def _conv_module(path, filters=8):
    """A SavedModel: 3x3 conv 3 -> filters (SAME, 8x8), mean pool, dense 4."""
    rng = np.random.default_rng(0)
    holder = tf.Module()
    holder.kernel = tf.Variable(rng.normal(size=(3, 3, 3, filters)), dtype=tf.float32)
    holder.dense = tf.Variable(rng.normal(size=(filters, 4)), dtype=tf.float32)
    holder.stat = tf.Variable(tf.zeros([4]), trainable=False)
    spec = tf.TensorSpec([None, 8, 8, 3], tf.float32)

    @tf.function(input_signature=[spec])
    def call(x):
        y = tf.nn.relu(tf.nn.conv2d(x, holder.kernel, 1, "SAME"))
        return tf.reduce_mean(y, axis=[1, 2]) @ holder.dense + holder.stat

    holder.__call__ = call
    tf.saved_model.save(holder, path)
    return path


def test_counts_of_a_small_module_equal_the_hand_count(tmp_path):
    module = modules.load_module(_conv_module(str(tmp_path / "m")))
    fields = cost.profile(module, batch_size=4)
    assert fields["params"] == 3 * 3 * 3 * 8 + 8 * 4  # the statistic is not counted
    assert fields["gmacs"] * 1e9 == pytest.approx(8 * 8 * 8 * 3 * 3 * 3 + 8 * 4)
    assert fields["feature_dim"] == 4 and fields["image_size"] == 8
    size = sum(
        os.path.getsize(os.path.join(d, f))
        for d, _, files in os.walk(module.path)
        for f in files
    )
    assert fields["module_mb"] == pytest.approx(size / 1e6, abs=1e-3)
    assert fields["images_per_s"] > 0 and fields["throughput_batch"] == 4


def _keras_count(model):
    """Multiply-accumulates of a Keras model's conv and dense layers,
    counted from the layers' own attributes (not from a graph)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            h, w, c = layer.output.shape[1:]
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            h, w, c = layer.output.shape[1:]
            k_h, k_w = layer.kernel_size
            total += h * w * c * k_h * k_w * layer.kernel.shape[2]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def test_a_keras_file_counts_as_its_layers_say(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(
        weights=None, include_top=False, pooling="avg", input_shape=(96, 96, 3)
    )
    path = str(tmp_path / "m.keras")
    model.save(path)
    module = modules.load_module(path)
    fields = cost.profile(module, batch_size=2)
    assert fields["params"] == sum(
        int(np.prod(v.shape)) for v in model.trainable_weights
    )
    # Squeeze-excite blocks hold 1x1 convs on pooled maps: the layer count
    # includes them too.
    assert fields["gmacs"] * 1e9 == pytest.approx(_keras_count(model), rel=1e-3)


def _authors_format_resnet50(path, model):
    """The zoo's ResNet-50 (1001 classes) written in the authors' release
    format: serving_default(image) -> final_avg_pool [b, 1, 1, 2048], outputs."""
    holder = tf.Module()
    holder.model = model
    spec = tf.TensorSpec([None, 224, 224, 3], tf.float32, name="image")

    @tf.function(input_signature=[spec])
    def serve(image):
        out = model(image, training=False)
        return {
            "final_avg_pool": tf.reshape(out["pre_logits"], [-1, 1, 1, 2048]),
            "outputs": out["logits"],
            "final_layer": out["logits"],
        }

    tf.saved_model.save(holder, path, signatures={"serving_default": serve})


@pytest.mark.slow
def test_resnet50_counts_match_the_published_figures(tmp_path):
    from zoo import create_model

    model = create_model("resnet50", num_classes=1000, image_size=224)
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == RESNET50_PARAMS
    backbone = keras.Model(model.inputs, model.output["pre_logits"])
    fn = lambda x: backbone(x, training=False)  # noqa: E731
    macs = cost.multiply_accumulates(fn, 224)
    head = 2048 * 1000
    assert macs == _keras_count(model) - head  # the features path has no head
    assert 4.05e9 < macs < 4.15e9  # "about 4.1 GFLOPs" (multiply-adds)
    # The same network in the authors' release format (1001 classes).
    authors = create_model("resnet50", num_classes=1001, image_size=224)
    _authors_format_resnet50(str(tmp_path / "authors"), authors)
    module = modules.load_module(str(tmp_path / "authors"))
    assert module.format == "authors_release"
    fields = cost.profile(module, batch_size=1)
    assert fields["params"] == RESNET50_PARAMS + 2048 + 1  # one more class
    assert fields["gmacs"] == pytest.approx(macs / 1e9, rel=1e-5)


# --------------------------------------------------------------- rows


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """(module path, rows of two kNN settings, bundle folder)."""
    root = tmp_path_factory.mktemp("scored")
    path = _conv_module(str(root / "module"))
    kwargs = dict(config="smoke", evaluations=["knn"], sandbox="off", report=None)
    default = benchmark.evaluate(
        path,
        bundle=str(root / "bundle"),
        **dict(kwargs, evaluations=["knn", "linear_probe"]),
    )
    again = benchmark.evaluate(path, **kwargs)
    other = benchmark.evaluate(path, overrides=("knn.ks=1,3",), **kwargs)
    return path, default.rows, again.rows, other.rows, str(root / "bundle")


def test_every_measured_row_and_bundle_carries_the_metadata(scored):
    path, rows, _, _, bundle = scored
    for row in rows:
        for column in METADATA:
            assert row[column] != "", column
        assert int(row["params"]) == 3 * 3 * 3 * 8 + 8 * 4
        assert len(row["fingerprint"]) == fingerprint.LENGTH
    with open(os.path.join(bundle, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["model"]["params"] == rows[0]["params"]
    assert set(manifest["model"]) == set(leaderboard.MODEL_COLUMNS)


def test_a_change_of_settings_changes_the_fingerprint(scored):
    _, rows, again, other, _ = scored
    rows = [r for r in rows if r["evaluation"] == "knn"]
    assert {r["fingerprint"] for r in rows} == {r["fingerprint"] for r in again}
    assert {r["fingerprint"] for r in rows}.isdisjoint(r["fingerprint"] for r in other)
    # The module's contract is not the protocol: another input size keeps it.
    protocol = json.loads(rows[0]["protocol"])
    settings = {k: v for k, v in protocol.items() if k not in ("config", "input")}
    settings.pop("preprocessing")
    kwargs = dict(dataset=rows[0]["dataset"], data="x", split=rows[0]["split"])
    base = dict(resize="shorter_side", crop="center", crop_fraction=1.0)
    one = fingerprint.measured(settings, 1, preprocessing={**base, "image_size": 8},
                               **kwargs)  # fmt: skip
    two = fingerprint.measured(settings, 1, preprocessing={**base, "image_size": 64},
                               **kwargs)  # fmt: skip
    assert one == two
    assert fingerprint.measured(settings, 2, preprocessing=base, **kwargs) != one


def _leaderboard_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "benchmark.cli.leaderboard", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def _board(path, rows, objective):
    leaderboard.append_rows(path, [dict(r, objective=objective) for r in rows])


def test_strict_refuses_a_ranking_across_fingerprints_and_accepts_one(scored, tmp_path):
    _, rows, again, other, _ = scored
    same = str(tmp_path / "same.csv")
    _board(same, rows, "a")
    _board(same, [dict(r, handle="second") for r in again], "b")
    done = _leaderboard_cli(f"--leaderboard={same}", "--strict", "--rank_by=knn")
    assert done.returncode == 0, done.stderr
    mixed = str(tmp_path / "mixed.csv")
    _board(mixed, rows, "a")
    _board(mixed, [dict(r, handle="second") for r in other], "b")
    done = _leaderboard_cli(f"--leaderboard={mixed}", "--strict", "--rank_by=knn")
    assert done.returncode == 1
    assert "spans 2 protocol fingerprints" in done.stderr
    assert "settings ks: [1, 3, 5, 10, 20, 50, 100] -> [1, 3]" in done.stderr
    # Without --strict the groups are ranked apart, each from 1.
    done = _leaderboard_cli(f"--leaderboard={mixed}", "--rank_by=knn")
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    table = [line for line in lines if line and line[0] in ("1", "2")]
    assert [(line[0], line[-1]) for line in table] == [("1", "A"), ("1", "B")]
    assert "protocol B: 1 configurations" in done.stdout


def test_paper_rows_share_one_fingerprint_per_evaluation_and_dataset():
    rows = leaderboard.read_rows(os.path.join(ROOT, "leaderboard.csv"))
    rows = [r for r in rows if r["source"].startswith(leaderboard.PAPER_PREFIX)]
    linear = [r for r in rows if r["evaluation"] == "linear_probe"]
    by_dataset = {}
    for r in linear:
        by_dataset.setdefault(r["dataset"], set()).add(r["fingerprint"])
    assert by_dataset and all(len(v) == 1 for v in by_dataset.values())
    groups = views.ranking_groups(rows, "linear_probe")
    assert len(groups) == 1  # the paper's rows rank together


def test_models_view_sorts_by_metadata_and_plots_accuracy_against_macs(
    scored, tmp_path
):
    _, rows, _, _, _ = scored
    board = str(tmp_path / "b.csv")
    _board(board, rows, "small")
    big = [
        dict(r, handle="big", gmacs=repr(float(r["gmacs"]) * 10), params="999999")
        for r in rows
    ]
    _board(board, big, "big")
    header, lines = views.models(leaderboard.read_rows(board), "gmacs", "knn")
    assert [line[0] for line in lines] == ["small", "big"]
    header, lines = views.models(leaderboard.read_rows(board), "params", "knn")
    assert lines[-1][3] == "1.00"
    png = str(tmp_path / "cost.png")
    done = _leaderboard_cli(
        f"--leaderboard={board}", "--models", "--rank_by=knn", f"--plot_cost={png}"
    )
    assert done.returncode == 0, done.stderr
    assert "GMACs" in done.stdout and os.path.getsize(png) > 1000
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_site_shows_the_models_tab_and_accuracy_against_macs(scored, tmp_path):
    from benchmark.report.site import COST_FIGURE, write_site

    _, rows, _, _, _ = scored
    board = str(tmp_path / "b.csv")
    _board(board, rows, "small")
    data = write_site(leaderboard.read_rows(board), str(tmp_path / "site"))
    (models,) = [t for t in data["tabs"] if t["name"] == "models"]
    cells = next(iter(models["cells"].values()))
    assert cells["params"]["mean"] == pytest.approx((3 * 3 * 3 * 8 + 8 * 4) / 1e6)
    assert {c["key"] for c in models["columns"]} >= {"params", "gmacs", "images_per_s"}
    assert data["cost_figure"] == COST_FIGURE
    assert os.path.getsize(tmp_path / "site" / COST_FIGURE) > 1000
