"""Seed statistics (benchmark.stats.seeds): golden values for the mean, standard
deviation and Student-t interval, Welch's t-test against scipy's
independent implementation, and grouping of leaderboard rows by
configuration over seeds."""

import math

import pytest
from scipy import stats as scipy_stats

from benchmark.results import leaderboard
from benchmark.stats import seeds


def test_golden_mean_std_and_interval():
    s = seeds.seed_stats([0.70, 0.72, 0.74], seeds=["0", "1", "2"])
    assert s.n == 3 and s.mean == pytest.approx(0.72)
    assert s.std == pytest.approx(0.02)
    # t_{0.975, 2} = 4.302652729911275; half width = t * 0.02 / sqrt(3)
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert (s.low, s.high) == pytest.approx((0.72 - half, 0.72 + half))
    one = seeds.seed_stats([0.5])
    assert one.n == 1 and one.std is None and one.low is None
    assert seeds.interval_text(one, 100) == "50.0"
    assert seeds.interval_text(s, 100) == "72.0±5.0 (3)"
    with pytest.raises(ValueError, match="at least one value"):
        seeds.seed_stats([])


@pytest.mark.parametrize(
    "a, b",
    [
        ([0.70, 0.72, 0.74, 0.71], [0.75, 0.77, 0.76]),
        ([0.1, 0.3, 0.2], [0.11, 0.29, 0.21, 0.25, 0.18]),
        ([0.5, 0.52, 0.49], [0.4, 0.6]),
    ],
)
def test_welch_matches_scipy(a, b):
    ours = seeds.welch(seeds.seed_stats(a), seeds.seed_stats(b))
    theirs = scipy_stats.ttest_ind(a, b, equal_var=False).pvalue
    assert ours == pytest.approx(theirs, rel=1e-10)


def test_welch_needs_two_seeds_and_handles_constant_samples():
    one, two = seeds.seed_stats([0.5]), seeds.seed_stats([0.5, 0.6])
    assert seeds.welch(one, two) is None
    same = seeds.seed_stats([0.3, 0.3])
    assert seeds.welch(same, seeds.seed_stats([0.3, 0.3])) == 1.0
    assert seeds.welch(same, seeds.seed_stats([0.4, 0.4])) == 0.0


def _rows(objective, values, evaluation="linear_probe", dataset="cifar10"):
    return [
        leaderboard.make_row(
            source="measured",
            handle=f"/m/{objective}{i}",
            module_sha256="0" * 64,
            arch="resnet50",
            objective=objective,
            pretrain_dataset="imagenet2012",
            evaluation=evaluation,
            dataset=dataset,
            split="train->test",
            metric="accuracy",
            value=v,
            seed=str(i),
        )
        for i, v in enumerate(values)
    ]


def test_rows_aggregate_by_configuration_and_differ_from_softmax():
    rows = _rows("softmax", [0.90, 0.91, 0.92, 0.91])
    rows += _rows("label_smoothing", [0.86, 0.87, 0.86, 0.85])  # clearly worse
    rows += _rows("cosine_softmax(tau=0.05)", [0.905, 0.915, 0.90, 0.92])  # same
    rows += _rows("sigmoid", [0.80])  # one seed: no test
    rows += _rows("softmax", [0.5, 0.6], dataset="pets")
    agg = seeds.aggregate(rows)
    config = seeds.config_key(rows[0])
    assert config[:4] == ("measured", "resnet50", "softmax", "imagenet2012")
    result = ("linear_probe", "cifar10", "train->test", "accuracy")
    assert agg[config, result].n == 4
    assert agg[config, result].seeds == ("0", "1", "2", "3")
    assert agg[config, result].mean == pytest.approx(0.91)
    assert len(agg) == 5
    diffs = seeds.differences(agg)
    by_objective = {k[0][2]: d for k, d in diffs.items() if k[1] == result}
    assert set(by_objective) == {
        "label_smoothing",
        "cosine_softmax(tau=0.05)",
        "sigmoid",
    }
    assert by_objective["label_smoothing"].significant
    assert by_objective["label_smoothing"].delta == pytest.approx(-0.05)
    assert not by_objective["cosine_softmax(tau=0.05)"].significant
    assert not by_objective["sigmoid"].tested
    assert not by_objective["sigmoid"].significant
