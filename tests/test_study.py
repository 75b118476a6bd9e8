"""Studies (pipeline/study.py, zoo-matrix with a matrix config) and the
reproduction report (pipeline/reproduction.py): a study resumes from what is
on disk, scores its modules through the harness and analyses them per
seed, and the report's statistics and verdicts are checked on values whose
outcome is known."""

import json
import math
import os
import re
import shutil

import numpy as np
import pytest

from benchmark.results import bundle as bundles
from benchmark.results import leaderboard
from pipeline import reproduction
from pipeline.configs import is_matrix_config, list_matrix_configs, load_matrix_config
from zoo.objectives import list_objectives

BENCH = '''"""The tiny study's benchmark, a config file like any submitter's.

Command: zoo-benchmark --config=THIS_FILE --module=MODULE --datasets=digits_5to9
Expected: rows for source top-1, the linear probe and R^2.
"""
from benchmark.configs.config import BenchmarkConfig, evaluation


def get_config():
    return BenchmarkConfig(
        name="tiny_study",
        datasets=("digits_5to9",),
        max_per_class=30,
        evaluations=(
            evaluation("imagenet_ood", data="digits", sets=("imagenet2012",)),
            evaluation("linear_probe", num_l2=5),
            evaluation("class_separation", data="digits", split="train"),
        ),
    )
'''

STUDY = '''"""A one-module study on digits (the tests' shared trained run)."""
from benchmark.analyses.config import AnalysisConfig
from benchmark.configs.config import BenchmarkConfig, evaluation
from benchmark.runner.request import RunRequest
from pipeline.matrix import MatrixConfig


def benchmark_request(matrix):  # the bundle path: a request, as zoo-submit
    source = matrix.source_dataset()
    return RunRequest(
        config=BENCH_PATH,
        datasets=(matrix.transfer,),
        overrides=(f"imagenet_ood.data={source}",
                   f"class_separation.data={source}"),
    )


def few_shot_config(matrix):
    return BenchmarkConfig(
        name="tiny_few_shot",
        datasets=(matrix.transfer,),
        max_per_class=30,
        evaluations=(
            evaluation("linear_probe", num_l2=5, train_examples=100),
            evaluation("few_shot", shots=(1, 5), draws=3, val_per_class=3),
        ),
    )


def analysis_config(matrix):
    return AnalysisConfig(
        name="tiny_study", dataset=matrix.source_dataset(), split="test",
        analyses={"cka": {"batch_size": 50}, "sparsity": {}},
        max_per_class=20, batch_size=50,
    )


def get_config():
    return MatrixConfig(
        config="digits", objectives=("cosine_softmax",), seeds=(0,),
        workdir="unused", transfer="digits_5to9",
        overrides=dict(width_multiplier=0.0625, epochs=1, max_per_class=30,
                       global_batch_size=32, holdout_fraction=0.2),
        benchmark=lambda m: (benchmark_request(m), few_shot_config(m)),
        analysis=analysis_config, reference="cosine_softmax",
        arms={"sweep": {"labels": ("cosine_softmax",),
                        "paper": r"cosine_softmax\\(tau=[0-9.]+\\)"}},
    )
'''


def test_the_mini_zoo_config_covers_every_objective_with_three_seeds(shared_data):
    from pipeline.matrix import run_configs

    assert "mini_zoo" in list_matrix_configs()
    matrix = load_matrix_config("mini_zoo")
    assert sorted(matrix.objectives) == sorted(list_objectives())
    assert len(matrix.objectives) == 11 and matrix.seeds == (0, 1, 2)
    assert is_matrix_config("mini_zoo") and not is_matrix_config("imagenette")
    given = matrix.replace(transfer="cifar10_folder", chexpert="chexpert:xrays")
    from pipeline.configs.mini_zoo import benchmark_config

    main, few_shot, full = (r.load_config() for r in given.benchmark(given))
    assert [r.config for r in given.benchmark(given)] == [
        "mini_zoo",
        "vtab1k",
        "full_transfer",
    ]
    names = [e.evaluator for e in main.evaluations]
    assert names == [
        "imagenet_ood",
        "linear_probe",
        "knn",
        "fine_tune",
        "class_separation",
        "chexpert",
    ]
    # The study's data reach the evaluators through the request's overrides.
    assert (main.evaluations[0].data, main.evaluations[4].data) == (
        given.source_dataset(),
        given.source_dataset(),
    )
    assert main.evaluations[5].data == "chexpert:xrays"
    without = matrix.benchmark(matrix)[0]  # no --chexpert: no Chexpert evaluation
    assert "chexpert" not in without.evaluations
    assert "chexpert" not in [e.evaluator for e in benchmark_config(matrix).evaluations]
    # The VTAB-1k protocol on the transfer set, whole test split, no fine-tuning.
    assert few_shot.name == "vtab1k" and few_shot.datasets == ("cifar10_folder",)
    assert given.benchmark(given)[1].evaluations == ("linear_probe", "few_shot")
    assert few_shot.max_per_class is None
    probe = few_shot.evaluations[0].settings
    assert probe["train_examples"] == 1000 and probe["val_fraction"] == 0.2
    # The linear probe and kNN on every image of the transfer set.
    assert full.name == "full_transfer" and full.max_per_class is None
    assert [e.evaluator for e in full.evaluations] == ["linear_probe", "knn"]
    # The arms: six temperatures (the objectives' 0.05 among them), and
    # three objectives on every training image for 10 epochs.
    assert len(matrix.arms["temperature"]["labels"]) >= 5
    assert "cosine_softmax" in matrix.arms["temperature"]["labels"]
    imagenette = str(shared_data / "imagenette")
    overrides = {**matrix.overrides, "dataset": imagenette}
    cells = dict(run_configs(matrix.replace(seeds=(0,), overrides=overrides)))
    assert len(cells) == 11 + 7 + 3
    long = cells["resnet50_squared_error_long_seed0"]
    assert (long.epochs, long.max_per_class) == (10, None)
    assert long.base_learning_rate == 4e-5  # the objective's own override stays


@pytest.mark.slow
def test_a_study_resumes_scores_analyses_and_reports(
    tmp_path, warm, trained_run, exported_module
):
    bench = tmp_path / "tiny_bench.py"
    bench.write_text(BENCH)
    config = tmp_path / "tiny_study.py"
    config.write_text(STUDY.replace("BENCH_PATH", repr(str(bench))))
    work = tmp_path / "study"
    name = "resnet50_cosine_softmax_seed0"
    # The shared run and module stand in for stage 1 (the matrix skips both).
    shutil.copytree(trained_run, work / "train" / name)
    shutil.copytree(exported_module[0], work / "modules" / name)
    args = [f"--config={config}", f"--workdir={work}"]
    # --benchmark_configs: the main config now, the other on a later run.
    first = warm.run("pipeline.matrix_main", *args, "--benchmark_configs=tiny_study")
    assert first.returncode == 0, first.stderr[-3000:]
    assert f"[matrix] {name}: already trained, skipping training" in first.stdout
    assert f"== [benchmark] {name} ==" in first.stdout
    assert "tiny_few_shot" not in first.stdout
    assert "== [analyze] seed 0: 1 modules ==" in first.stdout
    second = warm.run("pipeline.matrix_main", *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"== [benchmark] {name} (tiny_few_shot) ==" in second.stdout
    assert f"== [benchmark] {name} ==" not in second.stdout
    rows = leaderboard.read_rows(str(work / "leaderboard.csv"))
    found = {(r["evaluation"], r["metric"]) for r in rows}
    assert {
        ("imagenet_ood", "top1"),
        ("linear_probe", "accuracy"),
        ("class_separation", "r2"),
        ("sparsity", "nonzero_fraction"),
        ("few_shot", "1shot_accuracy"),
        ("few_shot", "5shot_accuracy_se"),
    } <= found
    assert (work / "analysis" / "seed0" / "cka.json").is_file()
    done = json.loads((work / "benchmark" / f"{name}.json").read_text())
    few = json.loads((work / "benchmark" / f"{name}.tiny_few_shot.json").read_text())
    assert (done["config"], few["config"]) == ("tiny_study", "tiny_few_shot")
    assert done["rows"] + few["rows"] == sum(
        r["evaluation"] != "sparsity" for r in rows
    )

    again = warm.run("pipeline.matrix_main", *args)  # everything is on disk
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[benchmark" not in again.stdout and "[analyze]" not in again.stdout
    assert leaderboard.read_rows(str(work / "leaderboard.csv")) == rows

    # The request's rows also went to a results bundle like any submitter's:
    # it verifies, re-running every evaluation, and merges.
    bundle = work / "bundles" / name
    assert sorted(os.listdir(bundle)) == sorted(bundles.FILES)
    made = bundles.read(str(bundle))
    assert {r["evaluation"] for r in made.rows} == {
        "imagenet_ood",
        "linear_probe",
        "class_separation",
    }
    assert made.manifest["request"]["config"] == str(tmp_path / "tiny_bench.py")
    assert not (work / "bundles" / f"{name}.tiny_few_shot").exists()  # rows only
    verify = ("benchmark.cli.leaderboard", "verify", str(bundle), "--rerun=all")
    ok = warm.run(*verify, "--rerun_sandbox=off")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "FAIL" not in ok.stdout
    curated = tmp_path / "curated.csv"
    merge = ("benchmark.cli.leaderboard", "merge", str(bundle), "--portable")
    merged = warm.run(*merge, f"--leaderboard={curated}")
    assert merged.returncode == 0, merged.stderr[-3000:]
    curated_rows = leaderboard.read_rows(str(curated))
    assert len(curated_rows) == len(made.rows)
    # The curated board names the module by its path beside the board.
    assert {r["handle"] for r in curated_rows} == {f"study/modules/{name}"}
    assert str(tmp_path) not in curated.read_text()

    out = tmp_path / "docs" / "reproduction.md"
    out.parent.mkdir()
    report = warm.run("pipeline.reproduction_main", *args, f"--out={out}")
    assert report.returncode == 0, report.stderr[-3000:]
    text = out.read_text()
    assert "| cosine_softmax |" in text
    # One objective: no claim can be judged, and the report says so.
    claims = [li for li in text.splitlines() if li.startswith("| (")]
    assert len(claims) == 4
    assert all(li.endswith("| not measured |") for li in claims)
    assert (out.parent / "reproduction" / "transfer.png").is_file()
    # Each config's linear probe keeps its own column; few-shot by k.
    assert (
        "| objective | R² | linear | linear, tiny_few_shot | 1-shot | 5-shot |" in text
    )
    by_config = {
        json.loads(r["protocol"])["config"]: float(r["value"])
        for r in rows
        if (r["evaluation"], r["metric"]) == ("linear_probe", "accuracy")
    }
    tables = [li for li in text.splitlines() if li.startswith("| cosine_softmax |")]
    main_cells, few_cells = (t.split("|") for t in tables[:2])
    assert main_cells[4].strip() == f"{100 * by_config['tiny_study']:.1f} (1)"
    assert few_cells[3].strip() == f"{100 * by_config['tiny_study']:.1f} (1)"
    assert few_cells[4].strip() == f"{100 * by_config['tiny_few_shot']:.1f} (1)"

    bad = warm.run("pipeline.matrix_main", "--config=digits", "--transfer=x")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --transfer is read by matrix configs only (such as mini_zoo); "
        "--config=digits is a training config"
    ]
    unknown = warm.run("pipeline.matrix_main", *args, "--benchmark_configs=nope")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: --benchmark_configs names nope, not a benchmark config of this "
        "matrix; choose from tiny_study, tiny_few_shot"
    ]


def _values(table):
    """{(objective, seed): {column: value}} from {objective: {column: [...]}}."""
    out = {}
    for objective, columns in table.items():
        for column, values in columns.items():
            for seed, value in enumerate(values):
                out.setdefault((objective, str(seed)), {})[column] = value
    return out


def test_the_claims_on_values_of_known_outcome():
    # Four objectives: the more separated, the worse the linear transfer;
    # higher top-1 than softmax goes with higher R^2; fine-tuning nearly
    # equalises them.
    table = {
        "softmax": dict(
            top1=[0.70, 0.71, 0.69],
            r2=[0.30, 0.31, 0.29],
            linear_probe=[0.80, 0.81, 0.79],
            fine_tune=[0.90, 0.90, 0.91],
        ),
        "a": dict(
            top1=[0.72, 0.73, 0.72],
            r2=[0.40, 0.41, 0.40],
            linear_probe=[0.75, 0.74, 0.75],
            fine_tune=[0.90, 0.91, 0.90],
        ),
        "b": dict(
            top1=[0.74, 0.73, 0.74],
            r2=[0.50, 0.49, 0.50],
            linear_probe=[0.70, 0.71, 0.70],
            fine_tune=[0.89, 0.90, 0.90],
        ),
        "c": dict(
            top1=[0.68, 0.67, 0.68],
            r2=[0.20, 0.21, 0.20],
            linear_probe=[0.85, 0.84, 0.85],
            fine_tune=[0.91, 0.90, 0.90],
        ),
    }
    values = _values(table)
    objectives = list(table)
    a = reproduction.claim_a(values, objectives, "softmax")
    assert a["better"] == ["a", "b"] and a["both"] == ["a", "b"]
    assert a["verdict"] == "reproduced" and a["rho"] == pytest.approx(1.0)
    b = reproduction.claim_b(values, objectives)
    assert b["rho"] == pytest.approx(-1.0) and b["verdict"] == "reproduced"
    assert b["high"] < 0
    c = reproduction.claim_c(values, objectives)
    assert c["ratio"] < 0.2 and c["verdict"] == "reproduced" and c["high"] < 1
    # Reversed: transfer rises with R^2.
    flipped = {o: dict(v, linear_probe=v["r2"]) for o, v in table.items()}
    b = reproduction.claim_b(_values(flipped), objectives)
    assert b["rho"] == pytest.approx(1.0) and b["verdict"] == "not reproduced"

    layers = [f"block{i}" for i in range(6)]
    cka = {
        s: {o: [0.95, 0.9, 0.8, 0.7, 0.5 + 0.01 * s, 0.4] for o in "abc"}
        for s in range(3)
    }
    d = reproduction.claim_d(layers, cka)
    assert d["early"] == pytest.approx(0.925)
    assert d["late"] == pytest.approx((0.51 + 0.4) / 2, abs=0.01)
    assert d["verdict"] == "reproduced" and d["low"] > 0
    assert reproduction.claim_d(layers[:2], cka)["verdict"] == "not measured"


def test_a_single_seed_gives_no_interval_and_says_so():
    table = {
        o: dict(r2=[r], linear_probe=[lin], fine_tune=[ft])
        for o, r, lin, ft in (
            ("softmax", 0.3, 0.8, 0.9),
            ("a", 0.4, 0.7, 0.9),
            ("b", 0.5, 0.6, 0.91),
        )
    }
    b = reproduction.claim_b(_values(table), list(table))
    assert b["rho"] == pytest.approx(-1.0)
    # One seed: nothing to resample, so no interval and no stronger verdict.
    assert math.isnan(b["low"]) and math.isnan(b["high"])
    assert b["verdict"] == "direction only"


def test_each_configs_transfer_rows_fill_their_own_columns():
    def row(evaluation, metric, value, config, seed="0"):
        return {
            "source": leaderboard.MEASURED,
            "objective": "softmax",
            "seed": seed,
            "evaluation": evaluation,
            "metric": metric,
            "dataset": "cifar10",
            "split": "test",
            "value": str(value),
            "protocol": json.dumps({"config": config}),
        }

    rows = [
        row("linear_probe", "accuracy", 0.4, "mini_zoo"),
        row("linear_probe", "accuracy", 0.3, "vtab1k"),
        row("few_shot", "10shot_accuracy", 0.25, "vtab1k"),
        row("few_shot", "10shot_accuracy_se", 0.01, "vtab1k"),
        row("few_shot", "1shot_accuracy", 0.15, "vtab1k"),
    ]
    values = reproduction.module_values(rows, "imagenette", "cifar10", "mini_zoo")
    assert values == {
        ("softmax", "0"): {
            "linear_probe": 0.4,
            "linear_probe@vtab1k": 0.3,
            "shot10": 0.25,
            "shot1": 0.15,
        }
    }
    assert reproduction.few_shot_columns(values) == [
        ("linear_probe@vtab1k", "linear, vtab1k"),
        ("shot1", "1-shot"),
        ("shot10", "10-shot"),
    ]
    # Without a main config every linear probe is the main column (last wins).
    assert (
        reproduction.module_values(rows, "x", "cifar10")[("softmax", "0")][
            "linear_probe"
        ]
        == 0.3
    )


def test_variants_add_cells_and_bad_ones_say_what_to_fix():
    from pipeline.matrix import MatrixConfig, run_configs

    matrix = MatrixConfig(
        config="digits",
        objectives=("softmax",),
        seeds=(0, 1),
        overrides=dict(epochs=1, max_per_class=30),
        variants={
            "cosine_softmax_t0.02": {
                "objective": "cosine_softmax",
                "objective_hparams": {"temperature": 0.02},
            },
            "softmax_long": {"objective": "softmax", "epochs": 4},
        },
        arms={"t": {"labels": ("softmax", "cosine_softmax_t0.02")}},
    )
    cells = dict(run_configs(matrix))
    assert list(cells)[:3] == [  # seed-major, objectives first
        "resnet50_softmax_seed0",
        "resnet50_cosine_softmax_t0.02_seed0",
        "resnet50_softmax_long_seed0",
    ]
    assert len(cells) == 6
    t = cells["resnet50_cosine_softmax_t0.02_seed1"]
    assert (t.objective, t.objective_hparams, t.seed) == (
        "cosine_softmax",
        {"temperature": 0.02},
        1,
    )
    # A variant's settings apply after the matrix's overrides.
    assert cells["resnet50_softmax_long_seed0"].epochs == 4
    assert cells["resnet50_softmax_seed0"].epochs == 1
    assert matrix.run_labels()["resnet50_softmax_long_seed1"] == ("softmax_long", 1)

    for bad, says in (
        (dict(variants={"x": {"epochs": 2}}), "matrix variant 'x' names no objective"),
        (dict(variants={"softmax": {"objective": "softmax"}}), "also an objective"),
        (dict(arms={"a": {"labels": ("nope",)}}), "matrix arm 'a' names ['nope']"),
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            run_configs(matrix.replace(**bad))


def test_an_arm_reports_rank_correlations_seed_std_and_the_papers_points(tmp_path):
    # Three temperatures x 3 seeds whose R^2 rises while transfer falls.
    table = {
        f"t{i}": dict(
            r2=[0.2 + 0.1 * i + 0.01 * s for s in range(3)],
            linear_probe=[0.5 - 0.05 * i + 0.01 * s for s in range(3)],
            knn=[0.4 - 0.05 * i - 0.02 * s for s in range(3)],
        )
        for i in range(4)
    }
    values = _values(table)
    columns = reproduction.transfer_columns(values)
    assert columns == [("linear_probe", "linear"), ("knn", "kNN")]
    result = reproduction.arm_result(values, list(table), columns)
    linear = result["correlations"]["linear_probe"]
    assert linear["rho"] == pytest.approx(-1.0) and linear["n"] == 4
    assert linear["verdict"] == "reproduced" and linear["high"] < 0
    # std over seeds of 0.50, 0.51, 0.52 is 0.01; of 0.40, 0.38, 0.36 is 0.02.
    assert result["seed_std"]["linear_probe"] == pytest.approx(0.01)
    assert result["seed_std"]["knn"] == pytest.approx(0.02)

    # The curated leaderboard's temperature sweep: R^2 rises with tau while
    # CIFAR-10 linear accuracy falls (the paper's Table 4 rows).
    from pipeline.configs.mini_zoo import ARMS

    rows = leaderboard.read_rows("leaderboard.csv")
    points = reproduction.paper_points(rows, ARMS["temperature"]["paper"], "cifar10")
    assert len(points) == 8
    ordered = [points[k] for k in sorted(points)]
    assert ordered[0][0] == pytest.approx(0.236) and ordered[-1][0] == pytest.approx(
        0.77
    )
    assert ordered[0][1] > ordered[-1][1]
    defaults = reproduction.paper_points(rows, ARMS["objectives"]["paper"], "cifar10")
    assert "softmax" in defaults and not any("(" in k for k in defaults)


def test_the_reading_states_each_arms_rho_and_how_far_training_longer_moved():
    from pipeline.matrix import MatrixConfig

    matrix = MatrixConfig(
        config="digits", objectives=("softmax", "cosine_softmax"), seeds=(0, 1, 2),
        variants={
            "softmax_long": {"objective": "softmax", "epochs": 10},
            "cosine_t0.1": {"objective": "cosine_softmax",
                            "objective_hparams": {"temperature": 0.1}},
            "cosine_t0.2": {"objective": "cosine_softmax",
                            "objective_hparams": {"temperature": 0.2}},
        },
        arms={"length": {"labels": ("softmax_long",)},
              "temperature": {"labels": ("cosine_softmax", "cosine_t0.1",
                                         "cosine_t0.2")}},
    )  # fmt: skip
    table = {
        "softmax": dict(r2=[0.10, 0.11, 0.12], linear_probe=[0.30, 0.31, 0.32],
                        top1=[0.40, 0.41, 0.42]),
        "softmax_long": dict(r2=[0.20, 0.21, 0.22], linear_probe=[0.40, 0.41, 0.42],
                             top1=[0.60, 0.61, 0.62]),
        "cosine_softmax": dict(r2=[0.1, 0.1, 0.1], linear_probe=[0.5, 0.5, 0.5]),
        "cosine_t0.1": dict(r2=[0.3, 0.3, 0.3], linear_probe=[0.4, 0.4, 0.4]),
        "cosine_t0.2": dict(r2=[0.5, 0.5, 0.5], linear_probe=[0.3, 0.3, 0.3]),
    }  # fmt: skip
    lines = reproduction._arms_reading(matrix, _values(table))
    length, temperature = lines
    # One cell: no rho, but the move from the 8-epoch cell, in seed means.
    assert length == (
        "- length: R² 0.210-0.210, source top-1 61.0-61.0%; against the same "
        "objectives' own cells softmax R² 0.110 -> 0.210 and linear 31.0 -> 41.0."
    )
    # Three cells: more separation, less transfer (ρ -1, no seed variance).
    assert temperature.startswith("- temperature: R² 0.100-0.500; ρ(R², linear) -1")
    assert "objectives' own cells" not in temperature  # a temperature, not length


def test_seed_spread_compares_the_same_seeds_before_and_after():
    from pipeline.reproduction import _power_section, seed_spread

    values = {
        ("softmax", "0"): {"linear_probe": 0.30, "knn": 0.20},
        ("softmax", "1"): {"linear_probe": 0.34, "knn": 0.24},
        ("softmax", "2"): {"linear_probe": 0.32, "knn": 0.22},
        ("focal", "0"): {"linear_probe": 0.31, "linear_probe@full_transfer": 0.40},
    }
    for seed, (lp, kn) in {"0": (0.41, 0.35), "1": (0.42, 0.36)}.items():
        values[("softmax", seed)].update(
            {"linear_probe@full_transfer": lp, "knn@full_transfer": kn}
        )
    spread = seed_spread(values, ["softmax", "focal"], "full_transfer")
    assert list(spread) == ["softmax"]  # focal has one seed of it
    got = spread["softmax"]
    # Seeds 0 and 1 only, before and after: std of (0.30, 0.34) and (0.41, 0.42).
    assert got["seeds"] == 2
    assert got["linear_probe"] == pytest.approx(np.std([0.30, 0.34], ddof=1))
    assert got["linear_probe@full_transfer"] == pytest.approx(
        np.std([0.41, 0.42], ddof=1)
    )
    assert got["knn"] == pytest.approx(np.std([0.20, 0.24], ddof=1))
    lines = _power_section(values, ["softmax", "focal"])
    assert lines[0].startswith("## Power")
    assert "| softmax | 2 | 2.83 | 0.71 | 2.83 | 0.71 |" in "\n".join(lines)
    assert _power_section(values, ["focal"]) == []
