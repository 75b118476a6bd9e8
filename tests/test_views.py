"""Terminal views of the leaderboard (benchmark/report/views.py, zoo-leaderboard):
the committed leaderboard fits in 160 columns with its 26 paper modules; rows
of several seeds show mean, 95% interval and n; the per-evaluation view uses
short dataset names and marks significant differences from softmax."""

import os

from benchmark.report import views
from benchmark.results import leaderboard

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARD = os.path.join(REPO, "leaderboard.csv")


def _seeded_rows(folder):
    rows = []
    for objective, values in (
        ("softmax", [0.90, 0.91, 0.92]),
        ("label_smoothing", [0.85, 0.86, 0.85]),
    ):
        for seed, value in enumerate(values):
            common = dict(
                source="measured",
                handle=f"/modules/{objective}_seed{seed}",
                module_sha256=f"{seed:064d}",
                arch="resnet50",
                objective=objective,
                pretrain_dataset="digits_0to4",
                seed=str(seed),
                split="train->test",
            )
            rows.append(
                leaderboard.make_row(
                    **common,
                    evaluation="linear_probe",
                    dataset=f"imagefolder:{folder}/cifar10",
                    metric="accuracy",
                    value=value,
                )
            )
            rows.append(
                leaderboard.make_row(
                    **common,
                    evaluation="knn",
                    dataset=f"imagefolder:{folder}/cifar10",
                    metric="accuracy",
                    value=value - 0.1,
                )
            )
    return rows


def test_the_committed_leaderboard_fits_160_columns(warm):
    shown = warm.run("benchmark.cli.leaderboard", f"--leaderboard={BOARD}")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 160
    assert lines[0].split()[:5] == ["rank", "objective", "arch", "source", "seeds"]
    body = [line for line in lines[2:] if line[:1].isdigit()]
    assert len([line for line in body if " paper " in line]) == 26  # its modules
    first = body[0].split()
    assert first[1:3] == ["softmax", "inception_v3"]  # best mean linear transfer
    for evaluation in ("linear_probe", "knn", "fine_tune", "chexpert"):
        detail = warm.run(
            "benchmark.cli.leaderboard",
            f"--leaderboard={BOARD}",
            f"--evaluation={evaluation}",
        )
        assert detail.returncode == 0, detail.stderr
        assert max(len(line) for line in detail.stdout.splitlines()) <= 160


def test_seeds_show_mean_interval_n_and_significance(tmp_path, warm):
    rows = _seeded_rows("/data/sets")
    board = tmp_path / "board.csv"
    leaderboard.append_rows(str(board), rows)
    shown = warm.run("benchmark.cli.leaderboard", f"--leaderboard={board}")
    assert shown.returncode == 0, shown.stderr
    softmax = next(line for line in shown.stdout.splitlines() if " softmax " in line)
    # 91.0 +- t(0.975, 2) * 0.01 / sqrt(3) = 2.5 points, over 3 seeds
    assert "91.0±2.5 (3)" in softmax and "81.0±2.5 (3)" in softmax
    header, lines = views.detail(rows, "linear_probe")
    assert header == ["objective", "arch", "source", "cifar10"]  # short name
    cells = {line[0]: line[3] for line in lines}
    assert cells["softmax"] == "91.0±2.5 (3)"
    assert cells["label_smoothing"].endswith("*")  # Welch p < 0.05 vs softmax
    bad = warm.run(
        "benchmark.cli.leaderboard", f"--leaderboard={board}", "--evaluation=bogus"
    )
    assert (
        bad.returncode == 2 and "evaluations present: knn, linear_probe" in bad.stderr
    )


def test_terminal_names_are_clipped_keeping_what_tells_twins_apart():
    assert views.clip_name("softmax [vtab1k]") == "softmax [vtab1k]"
    clipped = views.clip_name("hyperspherical_prototypes_long [mini_zoo]")
    assert clipped == "hyperspherical_pro… [mini_zoo]" and len(clipped) == 30
    assert views.clip_name("x" * 40) == "x" * 29 + "…"


def test_short_dataset_names():
    assert views.short_dataset("imagefolder:/a/b/cifar10/") == "cifar10"
    assert views.short_dataset("tfds:oxford_iiit_pet") == "oxford_iiit_pet"
    assert views.short_dataset("chexpert:/x/nih1000") == "chexpert:nih1000"
    assert views.short_dataset("cifar10") == "cifar10"
    assert views.short_dataset("imagefolder:cifar10") == "cifar10"  # merged --portable
    assert views.short_dataset("generated-c:digits_0to4") == "generated-c:digits_0to4"


def test_one_module_under_two_configs_is_two_configurations():
    """A module scored by the mini-zoo config and by vtab1k has two linear
    probes of different protocols: never pooled, each named by its config;
    a variant's display name keeps it apart from its objective."""
    rows = []
    for config, value in (("mini_zoo", 0.35), ("vtab1k", 0.33)):
        for seed in ("0", "1"):
            rows.append(
                leaderboard.make_row(
                    source="measured",
                    handle=f"runs/modules/softmax_seed{seed}",
                    arch="resnet50",
                    objective="softmax",
                    seed=seed,
                    evaluation="linear_probe",
                    dataset="imagefolder:cifar10",
                    split="train->test",
                    metric="accuracy",
                    value=value,
                    protocol={"config": config},
                )
            )
    variant = dict(
        rows[0], name="softmax_long", handle="runs/modules/long", value="0.4"
    )
    configs = views.configurations([*rows, variant])
    assert sorted(views.display_name(c, configs) for c in configs) == [
        "softmax [mini_zoo]",
        "softmax [vtab1k]",
        "softmax_long",
    ]
    header, lines = views.detail(rows, "linear_probe")
    cells = {line[0]: line[3] for line in lines}
    assert (
        cells["softmax [mini_zoo]"].startswith("35.0")
        and "(2)" in cells["softmax [mini_zoo]"]
    )
    assert cells["softmax [vtab1k]"].startswith("33.0")
