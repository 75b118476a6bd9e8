"""Ranks with uncertainty (benchmark/stats/ranks.py, zoo-leaderboard
--summary, the site's Ranks tab): average ranks, mean ranks over common
datasets, bootstrap intervals over datasets and seeds, and tied tiers."""

import os
import subprocess
import sys

import numpy as np
import pytest

from benchmark.report import site, views
from benchmark.results import leaderboard
from benchmark.stats import ranks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(ranks.average_ranks([0.9, 0.5, 0.9, 0.1]),
                                  [1.5, 3.0, 1.5, 4.0])  # fmt: skip


def test_a_lead_smaller_than_the_noise_is_a_tie_and_a_large_one_is_not():
    rng = np.random.default_rng(0)
    tasks = [f"d{i}" for i in range(6)]

    def model(level, spread):
        return {t: list(level + rng.normal(0, spread, size=3)) for t in tasks}

    values = {
        "a": model(0.80, 0.02),
        "b": model(0.795, 0.02),  # 0.5 points behind a, noise 2 points: tied
        "c": model(0.60, 0.02),  # 20 points behind: its own tier
    }
    stats = ranks.rank_models(values, samples=400)
    by_model = {s.model: s for s in stats}
    assert [s.model for s in stats][-1] == "c"
    assert by_model["a"].group == by_model["b"].group == 1
    assert by_model["c"].group == 2
    assert by_model["c"].mean_rank == 3.0 and by_model["c"].low == 3.0
    assert by_model["a"].low < by_model["a"].high  # the noise shows
    assert all(s.tasks == 6 for s in stats)
    # Seeded: the same leaderboard gives the same intervals.
    again = ranks.rank_models(values, samples=400)
    assert [(s.low, s.high) for s in again] == [(s.low, s.high) for s in stats]


def test_vectorised_bootstrap_equals_the_replicate_by_replicate_loop():
    """Oracle: each replicate recomputed one model and task at a time from
    the same draws gives the same mean ranks, with uneven seed counts and
    replicates split across chunks."""
    rng = np.random.default_rng(3)
    seeds = [[rng.normal(size=int(rng.integers(1, 5))) for _ in range(4)]
             for _ in range(5)]  # fmt: skip
    seeds[1][2] = seeds[0][2].copy()  # ties get average ranks
    width = max(len(v) for row in seeds for v in row)
    draw = lambda: ranks.bootstrap_draws(  # noqa: E731
        np.random.default_rng(0), 37, (5, 4), width
    )
    old_chunk = ranks.CHUNK_VALUES
    ranks.CHUNK_VALUES = 5 * 4 * width * 10  # 10 replicates per chunk
    try:
        fast = ranks.bootstrap_mean_ranks(seeds, draw())
        slow = []
        for picked, uniform in draw():
            for b in range(len(picked)):
                table = np.empty((5, 4))
                for i in range(5):
                    for j, t in enumerate(picked[b]):
                        row = seeds[i][t]
                        index = np.floor(uniform[b, i, j, : len(row)] * len(row))
                        table[i, j] = row[index.astype(int)].mean()
                ranked = [ranks.average_ranks(table[:, j]) for j in range(4)]
                slow.append(np.mean(ranked, axis=0))
    finally:
        ranks.CHUNK_VALUES = old_chunk
    assert fast.shape == (37, 5)
    np.testing.assert_allclose(fast, np.array(slow))


def test_ranking_needs_two_models_and_a_common_task():
    with pytest.raises(ValueError, match="at least two models"):
        ranks.rank_models({"a": {"t": [1.0]}})
    with pytest.raises(ValueError, match="share no task"):
        ranks.rank_models({"a": {"t": [1.0]}, "b": {"u": [1.0]}})


def _rows(objective, values_by_dataset, seeds=(0, 1, 2)):
    rows = []
    for dataset, values in values_by_dataset.items():
        for seed, value in zip(seeds, values):
            rows.append(
                leaderboard.make_row(
                    source="measured",
                    handle=f"{objective}{seed}",
                    arch="resnet50",
                    objective=objective,
                    pretrain_dataset="imagenette",
                    evaluation="linear_probe",
                    dataset=dataset,
                    split="train->test",
                    metric="accuracy",
                    value=value,
                    seed=str(seed),
                    protocol={"evaluator": "linear_probe"},
                )  # fmt: skip
            )
    return rows


def _board(tmp_path):
    rows = _rows("softmax", {"cifar10": [0.80, 0.82, 0.81], "pets": [0.70, 0.69, 0.71]})
    rows += _rows(
        "sigmoid", {"cifar10": [0.81, 0.80, 0.82], "pets": [0.69, 0.70, 0.70]}
    )
    rows += _rows(
        "squared_error", {"cifar10": [0.5, 0.52, 0.51], "pets": [0.4, 0.41, 0.4]}
    )
    path = str(tmp_path / "board.csv")
    leaderboard.append_rows(path, rows)
    return path


def test_summary_prints_ranks_intervals_and_tied_tiers(tmp_path):
    board = _board(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli.leaderboard", f"--leaderboard={board}",
         "--summary"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()[2:5]]
    tiers = {line[5]: line[1] for line in lines}  # objective column -> tier
    assert tiers == {"softmax": "1", "sigmoid": "1", "squared_error": "2"}
    assert "bootstrap replicates resampling datasets and seeds" in done.stdout
    assert all(line[3].startswith("[") for line in lines)


def test_the_curated_leaderboard_is_ranked_with_tiers():
    rows = leaderboard.read_rows(leaderboard.CURATED)
    header, lines, groups = views.rank_summary(rows, samples=200)
    paper = [line for line in lines if line[6] == "paper"]
    assert len(paper) == 26  # every paper configuration, in its protocol group
    # The mini-zoo's measured configurations rank in groups of their own,
    # each named by the benchmark config that measured it.
    measured = [line for line in lines if line[6] == "measured"]
    assert measured and not {m[0] for m in measured} & {p[0] for p in paper}
    assert {"softmax [mini_zoo]", "softmax [vtab1k]"} <= {m[4] for m in measured}
    softmax = [line for line in lines if line[4] == "softmax" and line[5] == "resnet50"]
    squared = [line for line in lines if line[4] == "squared_error"
               and line[5] == "resnet50"]  # fmt: skip
    assert int(softmax[0][1]) < int(squared[0][1])  # softmax's tier is better


def test_the_site_has_a_ranks_tab(tmp_path):
    rows = leaderboard.read_rows(_board(tmp_path))
    data = site.site_data(rows)
    (tab,) = [t for t in data["tabs"] if t["name"] == "ranks"]
    cells = [c["mean_rank"] for c in tab["cells"].values()]
    assert sorted(c["tier"] for c in cells) == [1, 1, 2]
    assert all(c["low"] <= c["mean"] <= c["high"] for c in cells)
    assert set(tab["groups"]["mean_rank"].values()) == {"A001", "A002"}
