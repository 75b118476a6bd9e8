"""Chexpert: AUCs against sklearn and Keras, CheXpert CSV parsing against an
independent count, path layouts, one-line errors, and the evaluator on real
X-rays for a trained and a randomly initialised module."""

import csv
import gzip
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from benchmark.configs.config import BenchmarkConfig, evaluation
from benchmark.data import chexpert as chexpert_data
from benchmark.data.chexpert import ChexpertError
from benchmark.evaluators.chexpert import Chexpert
from benchmark.runner.harness import run_benchmark
from benchmark.stats import roc
from zoo.data import DatasetError

HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *chexpert_data.PATHOLOGIES]


# ----------------------------------------------------------------------- AUC


def test_exact_auc_by_hand_and_against_sklearn():
    # Pairs (pos, neg): 0.35 > 0.1, 0.35 < 0.4, 0.8 > both: 3 of 4.
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    assert roc.exact_auc(labels, scores) == 0.75
    # A tie between a positive and a negative counts one half.
    assert roc.exact_auc([0, 1], [0.5, 0.5]) == 0.5
    rng = np.random.RandomState(0)
    for n in (10, 200, 3000):
        labels = rng.rand(n) < 0.2
        labels[:2] = [True, False]
        scores = np.round(rng.rand(n) * 0.5 + 0.3 * labels, 2)  # with ties
        assert abs(roc.exact_auc(labels, scores) - roc_auc_score(labels, scores)) < 1e-3


def test_threshold_auc_matches_keras_and_approximates_the_exact_auc():
    rng = np.random.RandomState(1)
    labels = rng.rand(2000) < 0.3
    scores = 1 / (1 + np.exp(-(rng.randn(2000) + 1.2 * labels)))
    keras_auc = keras.metrics.AUC(num_thresholds=1000)
    keras_auc.update_state(labels, scores)
    assert roc.threshold_auc(labels, scores) == pytest.approx(
        float(keras_auc.result()), abs=1e-5
    )
    assert roc.threshold_auc(labels, scores) == pytest.approx(
        roc.exact_auc(labels, scores), abs=2e-3
    )
    # Scores all in one 1/999-wide bucket are indistinguishable: AUC 1/2.
    tiny = np.where(labels, 2e-4, 1e-4)
    assert roc.exact_auc(labels, tiny) == 1.0
    assert roc.threshold_auc(labels, tiny) == 0.5


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.RandomState(2)
    labels = rng.rand(400) < 0.25
    scores = 1 / (1 + np.exp(-(rng.randn(400) + labels)))
    low, high = roc.bootstrap_interval(labels, scores, samples=300, seed=3)
    assert (low, high) == roc.bootstrap_interval(labels, scores, samples=300, seed=3)
    assert low < roc.threshold_auc(labels, scores) < high
    assert 0.02 < high - low < 0.3
    with pytest.raises(ValueError, match="one positive and one negative"):
        roc.exact_auc([1, 1], [0.2, 0.3])


# ---------------------------------------------------------------------- CSVs


def test_real_chexpert_label_counts_match_an_independent_count(shared_data):
    path = shared_data / "chexpert_labels" / "train.csv.gz"
    table = chexpert_data.read_chexpert_csv(str(path))
    counts = chexpert_data.label_counts(table)
    expected = {p: dict.fromkeys(chexpert_data.COUNT_KINDS, 0) for p in counts}
    names = {"1.0": "positive", "0.0": "negative", "-1.0": "uncertain", "": "blank"}
    with gzip.open(path, "rt", newline="") as f:
        rows = 0
        for row in csv.DictReader(f):
            rows += 1
            for pathology in expected:
                expected[pathology][names[row[pathology]]] += 1
    assert rows == len(table) == 223_414
    assert counts == expected
    # Uncertain and blank count as negative.
    binary = table.binary()
    for j, pathology in enumerate(table.pathologies):
        assert binary[:, j].sum() == expected[pathology]["positive"]
    assert table.frontal.sum() < len(table)  # lateral views exist


def _write_csv(path, rows, header=HEADER):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def _png(path, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((12, 12, 1), value, np.uint8)
    path.write_bytes(tf.io.encode_png(image).numpy())


def _chexpert_tree(tmp_path):
    """Writes the CheXpert-v1.0-small layout with 2 patients; returns the
    folder that holds CheXpert-v1.0-small."""
    base = tmp_path / "CheXpert-v1.0-small"
    rows = []
    for split in ("train", "valid"):
        for patient in (1, 2):
            for view in ("frontal", "lateral"):
                study = f"{split}/patient{patient}/study1/view1_{view}.jpg"
                rel = f"CheXpert-v1.0-small/{study}"
                _png(tmp_path / rel)
                labels = ["1.0", "", "-1.0", "0.0", "1.0" if patient == 1 else ""]
                rows.append([rel, "Female", "60", view.capitalize(), "AP", *labels])
        _write_csv(base / f"{split}.csv", [r for r in rows if f"/{split}/" in r[0]])
    return tmp_path


def test_paths_resolve_from_the_parent_or_the_chexpert_folder(tmp_path):
    parent = _chexpert_tree(tmp_path)
    for root in (parent, parent / "CheXpert-v1.0-small"):
        data = chexpert_data.find_chexpert(str(root))
        table = data.table("train")
        assert table.frontal.tolist() == [True, False, True, False]
        files = chexpert_data.resolve_paths(data.root, table.paths[table.rows()])
        assert all(f.endswith("view1_frontal.jpg") for f in files)
        assert (parent / "CheXpert-v1.0-small" / "train" / "patient2").as_posix() in (
            files[1]
        )
    data = chexpert_data.find_chexpert(str(parent))
    table = data.table("train")
    np.testing.assert_array_equal(table.binary()[0], [1, 0, 0, 0, 1])
    assert np.isnan(table.raw[0, 1]) and table.raw[0, 2] == -1.0
    # As an ImageDataset: frontal rows only, the label a bitmask of positives.
    assert data.name == "chexpert"  # The real release's folder: the paper's name.
    labels = data.labels("train")
    np.testing.assert_array_equal(labels, [0b10001, 0b00001])
    np.testing.assert_array_equal(
        data.targets(labels), [[1, 0, 0, 0, 1], [1, 0, 0, 0, 0]]
    )
    examples = list(data.as_numpy_iterator("valid"))
    assert [e["id"] for e in examples] == [
        f"CheXpert-v1.0-small/valid/patient{p}/study1/view1_frontal.jpg" for p in (1, 2)
    ]
    assert examples[0]["image"].shape == (12, 12, 3)


def test_nih_sample_paths_resolve_next_to_the_csv(shared_data):
    root = shared_data / "nih1000_chexpert_format"
    data = chexpert_data.find_chexpert(str(root))
    table = data.table("valid")
    assert data.name == f"chexpert:{root}"  # Not the release: named by its folder.
    assert table.paths[0].startswith("images/")
    files = chexpert_data.resolve_paths(data.root, table.paths)
    assert len(files) == 200


def test_missing_columns_is_a_one_line_error(tmp_path):
    path = tmp_path / "train.csv"
    _write_csv(path, [["a.png", "1.0"]], header=["Path", "Atelectasis"])
    with pytest.raises(ChexpertError, match="lacks the CheXpert column") as error:
        chexpert_data.read_chexpert_csv(str(path))
    assert "Cardiomegaly" in str(error.value) and "\n" not in str(error.value)


def test_bad_label_value_names_the_line(tmp_path):
    path = tmp_path / "train.csv"
    _write_csv(path, [["a.png", "", "", "Frontal", "", "1.0", "2.0", "", "", ""]])
    with pytest.raises(ChexpertError, match=r"train.csv:2: label '2.0'"):
        chexpert_data.read_chexpert_csv(str(path))


def test_missing_images_is_a_one_line_error(tmp_path):
    with pytest.raises(ChexpertError, match="2 of 2 images .* are missing") as error:
        chexpert_data.resolve_paths(str(tmp_path), np.array(["a.png", "b.png"]))
    assert "first: a.png" in str(error.value) and "\n" not in str(error.value)


def test_undecodable_image_is_named(tmp_path, exported_module):
    from benchmark.features.extract import extract
    from benchmark.modules.loading import load_module

    _png(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    labels = ["1.0", "0.0", "", "", "1.0"]
    rows = [
        [name, "F", "1", "Frontal", "AP", *labels] for name in ("good.png", "bad.png")
    ]
    _write_csv(tmp_path / "train.csv", rows)
    _write_csv(tmp_path / "valid.csv", rows)
    data = chexpert_data.find_chexpert(str(tmp_path))
    module = load_module(exported_module[0])
    with pytest.raises(DatasetError, match="cannot decode image .*bad.png") as error:
        extract(module, data, "valid", batch_size=1, report=lambda line: None)
    assert "\n" not in str(error.value)


def test_iid_split_size_scales_with_the_label_file():
    evaluator = Chexpert()
    assert evaluator.iid_size(223_414, 191_027) == 22_431
    assert evaluator.iid_size(600, 600) == 100  # the minimum
    assert evaluator.iid_size(5000, 5000) == 502  # 5000 * 22431 / 223414
    assert evaluator.iid_size(150, 150) == 75  # at most half


# ------------------------------------------------------------------ evaluator


def _random_module(path):
    """Exports a randomly initialised classifier of the exported_module's
    architecture, its metadata saying it was never trained."""
    from export.hub_module import export_hub_module
    from zoo.config import TrainConfig
    from zoo.models import create_classifier
    from zoo.objectives import create_objective

    config = TrainConfig(
        arch="resnet50",
        width_multiplier=0.0625,
        image_size=32,
        objective="softmax",
        dataset="none",
        epochs=0,
        seed=0,
    )
    objective = create_objective("softmax")
    keras.utils.set_random_seed(0)
    model = create_classifier(
        "resnet50", objective, 5, image_size=32, width_multiplier=0.0625
    )
    info = {
        "config": json.loads(config.to_json()),
        "objective_hparams": objective.hparams(),
        "dataset": "untrained (random initialisation)",
        "num_classes": 5,
        "class_names": [f"untrained_{i}" for i in range(5)],
        "holdout": {},
    }
    return export_hub_module(model, objective, info, str(path), name="random_init")[0]


@pytest.mark.slow
def test_trained_and_random_modules_on_real_xrays(
    shared_data, exported_module, tmp_path
):
    spec = f"chexpert:{shared_data / 'nih1000_chexpert_format'}"
    config = BenchmarkConfig(
        name="nih",
        evaluations=(
            evaluation(
                "chexpert", data=spec, num_l2=6, bootstrap_samples=100, max_iter=200
            ),
        ),
    )
    results = {}
    for name, module in (
        ("trained", exported_module[0]),
        ("random", _random_module(tmp_path / "random")),
    ):
        rows = run_benchmark(config, module, report=lambda line: None)
        results[name] = {(r["split"], r["metric"]): float(r["value"]) for r in rows}
        print(
            name, {k: round(v, 3) for k, v in results[name].items() if "ci" not in k[1]}
        )
        for split in ("train->valid", "train->iid"):
            for pathology in chexpert_data.PATHOLOGIES:
                slug = pathology.lower().replace(" ", "_")
                auc = results[name][split, f"auc_{slug}"]
                low = results[name][split, f"auc_{slug}_ci_low"]
                high = results[name][split, f"auc_{slug}_ci_high"]
                assert 0.0 <= low <= high <= 1.0 and 0.0 <= auc <= 1.0
                assert (split, f"auc_exact_{slug}") in results[name]
        sizes = {(r["split"], r["train_size"], r["test_size"]) for r in rows}
        assert sizes == {("train->valid", "600", "200"), ("train->iid", "500", "100")}
    meta = json.loads((tmp_path / "random" / "metadata.json").read_text())
    assert meta["dataset"] == "untrained (random initialisation)"
    assert meta["recipe"]["epochs"] == 0
