"""Tests of the results CSV: schema, dedupe, atomic concurrent appends, tables."""

import csv
import datetime
import json
import multiprocessing
import os
import pathlib

import pytest

from benchmark.results import leaderboard
from benchmark.results.leaderboard import LeaderboardError
from tests.conftest import SHARED_DATA

REPO_LEADERBOARD = pathlib.Path(__file__).resolve().parents[1] / "leaderboard.csv"


@pytest.fixture(scope="module")
def paper_csv(shared_data):
    """Returns the paper's tables in long form (beside the shared data)."""
    path = SHARED_DATA.parent / "reference" / "paper_results.csv"
    if not path.is_file():
        pytest.fail(f"{path} is missing")
    return path


def _row(**overrides):
    """Returns a valid measured row, with `overrides` applied."""
    fields = dict(
        source="measured",
        handle="runs/softmax/seed0",
        arch="resnet50",
        objective="softmax",
        evaluation="linear_probe",
        dataset="cifar10",
        split="test",
        metric="accuracy",
        value=0.9,
        protocol={"num_l2": 45, "metric": "top1"},
        selected={"l2": 0.01},
    )
    fields.update(overrides)
    return leaderboard.make_row(**fields)


def test_make_row_fills_defaults_and_serialises():
    row = _row(value=1, train_size=50000, seconds=1.5)
    assert tuple(row) == leaderboard.COLUMNS
    assert row["value"] == "1.0" and row["train_size"] == "50000"
    assert row["protocol"] == '{"metric": "top1", "num_l2": 45}'  # Sorted keys.
    assert row["seconds"] == "1.5" and row["device"] == ""
    stamp = datetime.datetime.fromisoformat(row["timestamp"])
    assert stamp.utcoffset() == datetime.timedelta(0)
    reported = leaderboard.make_row(
        source="paper:X 2021", evaluation="knn", dataset="d", metric="m", value=2
    )
    assert reported["timestamp"] == "" and reported["protocol"] == "{}"


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(colour="red"), "unknown leaderboard column"),
        (dict(value=None), "lacks value"),
        (dict(value="abc"), "must be a number"),
        (dict(value=float("nan")), "finite"),
        (dict(source="mine"), "source must be"),
        (dict(protocol="[1]"), "JSON object"),
    ],
)
def test_make_row_rejects_invalid_fields(fields, message):
    with pytest.raises(LeaderboardError, match=message):
        _row(**fields)


def test_append_and_read_round_trip(tmp_path):
    path = str(tmp_path / "sub" / "lb.csv")  # Parent directories are created.
    rows = [_row(dataset="cifar10"), _row(dataset="food101", value=0.75)]
    assert leaderboard.append_rows(path, rows) == 2
    assert leaderboard.read_rows(path) == rows
    assert leaderboard.read_rows(str(tmp_path / "missing.csv")) == []
    # Appending the same rows again is idempotent.
    leaderboard.append_rows(path, rows)
    assert leaderboard.read_rows(path) == rows


def test_same_key_keeps_the_later_row(tmp_path):
    path = str(tmp_path / "lb.csv")
    leaderboard.append_rows(path, [_row(value=0.5), _row(dataset="food101")])
    leaderboard.append_rows(path, [_row(value=0.7, selected={"l2": 1.0})])
    rows = leaderboard.read_rows(path)
    assert [(r["dataset"], r["value"]) for r in rows] == [
        ("food101", "0.9"),
        ("cifar10", "0.7"),
    ]
    # A different protocol is a different result, not a replacement.
    leaderboard.append_rows(path, [_row(protocol={"num_l2": 10})])
    assert len(leaderboard.read_rows(path)) == 3


def test_foreign_header_raises_and_leaves_the_file_unchanged(tmp_path):
    path = tmp_path / "lb.csv"
    original = b"name,score\nalice,3\n"
    path.write_bytes(original)
    with pytest.raises(LeaderboardError, match="foreign header.*--leaderboard="):
        leaderboard.append_rows(str(path), [_row()])
    assert path.read_bytes() == original
    assert sorted(os.listdir(tmp_path)) == ["lb.csv", "lb.csv.lock"]  # No temp.


def test_invalid_row_writes_nothing(tmp_path):
    path = tmp_path / "lb.csv"
    leaderboard.append_rows(str(path), [_row()])
    before = path.read_bytes()
    good = dict(_row(dataset="food101"))
    with pytest.raises(LeaderboardError, match="colour"):
        leaderboard.append_rows(str(path), [good, {**good, "colour": "red"}])
    assert path.read_bytes() == before
    with pytest.raises(LeaderboardError):
        leaderboard.append_rows(str(tmp_path / "new.csv"), [{"value": 1.0}])
    assert not (tmp_path / "new.csv").exists()


def _append_worker(path, worker):
    """Appends 25 distinct rows one at a time (runs in a child process)."""
    for i in range(25):
        row = _row(handle=f"worker{worker}", dataset=f"d{i}", value=worker + i / 100)
        leaderboard.append_rows(path, [row])


def test_concurrent_appends_from_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "lb.csv")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_worker, args=(path, w)) for w in range(8)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * 8
    rows = leaderboard.read_rows(path)
    assert len(rows) == 200
    keys = {(r["handle"], r["dataset"]) for r in rows}
    assert len(keys) == 200
    with open(path) as f:
        assert f.read().count("source,timestamp") == 1
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_paper_rows_convert_the_reference_table(paper_csv):
    with open(paper_csv, newline="") as f:
        records = list(csv.DictReader(f))
    rows = leaderboard.paper_rows(paper_csv)
    assert len(rows) == len(records) == 512
    num_linear = sum(r["evaluation"] == "linear" for r in records)
    assert sum(r["evaluation"] == "linear_probe" for r in rows) == num_linear > 0
    assert not any(r["evaluation"] == "linear" for r in rows)
    (cifar10,) = [
        r
        for r in rows
        if (r["arch"], r["objective"], r["evaluation"], r["dataset"])
        == ("resnet50", "softmax", "linear_probe", "cifar10")
    ]
    assert float(cifar10["value"]) == pytest.approx(0.924)  # 92.4 % in Table 1.
    assert json.loads(cifar10["protocol"]) == {"table": "1"}
    assert cifar10["timestamp"] == "" and cifar10["pretrain_dataset"] == "imagenet2012"
    assert cifar10["source"] == "paper:Kornblith et al. 2021"
    r2 = [r for r in rows if r["metric"] == "r2"]
    assert r2 and all(0.0 < float(r["value"]) < 1.0 for r in r2)  # Not rescaled.
    assert {(r["dataset"], r["split"]) for r in r2} == {("imagenet2012", "train")}
    # The measured rows' names: no paper-only evaluation names survive.
    names = {r["evaluation"] for r in rows}
    assert names == {
        "linear_probe",
        "knn",
        "fine_tune",
        "imagenet_ood",
        "class_separation",
        "chexpert",
    }
    (edema,) = [
        r
        for r in rows
        if r["objective"] == "softmax"
        and r["evaluation"] == "chexpert"
        and r["split"] == "train->valid"
        and r["metric"] == "auc_edema"
    ]
    assert edema["dataset"] == "chexpert"
    (top1,) = [
        r
        for r in rows
        if (r["objective"], r["arch"], r["evaluation"], r["metric"])
        == ("softmax", "resnet50", "imagenet_ood", "top1")
    ]
    assert (top1["dataset"], top1["split"], float(top1["value"])) == (
        "imagenet2012",
        "validation",
        pytest.approx(0.770),
    )


def test_the_committed_leaderboard_holds_every_paper_row(paper_csv):
    rows = leaderboard.read_rows(str(REPO_LEADERBOARD))
    keys = {tuple(r[c] for c in leaderboard.KEY_COLUMNS) for r in rows}
    for row in leaderboard.paper_rows(paper_csv):
        assert tuple(row[c] for c in leaderboard.KEY_COLUMNS) in keys


def test_paper_and_measured_fine_tuning_meet_in_one_column():
    rows = leaderboard.read_rows(str(REPO_LEADERBOARD))
    measured = _row(evaluation="fine_tune", dataset="cifar10", value=0.95)
    table = leaderboard.ranked_table(
        [*rows, measured], rank_by="fine_tune", dataset="cifar10"
    )
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header[3] == "fine_tune/cifar10/accuracy"
    column = [line[3] for line in _body(table)]
    assert "95.0" in column and "96.9" in column  # Measured beside the paper's.
    chexpert = leaderboard.ranked_table(rows, rank_by="chexpert")
    assert "chexpert/chexpert/auc_atelectasis@valid" in chexpert
    assert "chexpert/chexpert/auc_atelectasis@iid" in chexpert


def _table_rows():
    """Returns a hand-made result set: three measured modules and a paper row."""

    def measured(handle, objective, evaluation, dataset, metric, value):
        return _row(
            handle=handle,
            objective=objective,
            evaluation=evaluation,
            dataset=dataset,
            metric=metric,
            value=value,
        )

    return [
        measured("h/a", "softmax", "linear_probe", "cifar10", "accuracy", 0.80),
        measured("h/b", "sigmoid", "linear_probe", "cifar10", "accuracy", 0.9),
        measured("h/b", "sigmoid", "linear_probe", "pets", "accuracy", 0.5),
        measured("h/a", "softmax", "linear_probe", "pets", "accuracy", 0.6),
        measured("h/c", "squared_error", "class_separation", "in", "r2", 0.8451),
        measured("h/a", "softmax", "class_separation", "in", "r2", 0.349),
        leaderboard.make_row(
            source="paper:P",
            arch="resnet50",
            objective="softmax",
            evaluation="linear_probe",
            dataset="cifar10",
            metric="accuracy",
            value=0.8,
        ),
    ]


def _body(table):
    """Returns the data lines of a markdown table as lists of stripped cells."""
    lines = table.splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_ranked_table_orders_modules_by_the_rank_column():
    table = leaderboard.ranked_table(_table_rows())
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header == [
        "rank",
        "objective",
        "arch",
        "linear_probe/cifar10/accuracy",
        "linear_probe/pets/accuracy",
        "class_separation/in/r2",
        "handle",
    ]
    assert _body(table) == [
        ["1", "sigmoid", "resnet50", "90.0", "50.0", "", "h/b"],
        ["2", "softmax", "resnet50", "80.0", "60.0", "0.349", "h/a"],
        ["2", "softmax", "resnet50", "80.0", "", "", "paper:P"],  # Tie: same rank.
        ["-", "squared_error", "resnet50", "", "", "0.845", "h/c"],  # Missing last.
    ]


def test_ranked_table_by_dataset_and_evaluation():
    rows = _table_rows()
    by_pets = _body(leaderboard.ranked_table(rows, dataset="pets"))
    assert [line[-1] for line in by_pets] == ["h/a", "h/b", "h/c", "paper:P"]
    by_r2 = _body(leaderboard.ranked_table(rows, rank_by="class_separation"))
    assert [line[-1] for line in by_r2][:2] == ["h/c", "h/a"]
    with pytest.raises(LeaderboardError, match="evaluations present"):
        leaderboard.ranked_table(rows, rank_by="fine_tune")


def test_writers_through_a_symlink_and_the_file_lose_nothing(tmp_path):
    real = tmp_path / "data" / "lb.csv"
    real.parent.mkdir()
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_append_worker, args=(str(p), w))
        for w, p in enumerate([real, link, real, link])
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0] * 4
    assert len(leaderboard.read_rows(str(real))) == 100
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert sorted(os.listdir(tmp_path)) == ["data", "link.csv"]


def test_read_only_and_directory_leaderboards_are_refused(tmp_path):
    path = tmp_path / "lb.csv"
    leaderboard.append_rows(str(path), [_row()])
    before = path.read_bytes()
    path.chmod(0o444)  # Refused for root too: the mode bits say read-only.
    try:
        with pytest.raises(LeaderboardError, match="read-only") as error:
            leaderboard.append_rows(str(path), [_row(dataset="other")])
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before and "\n" not in str(error.value)
    with pytest.raises(LeaderboardError, match="is a directory"):
        leaderboard.append_rows(str(tmp_path), [_row()])


@pytest.mark.parametrize("field", ["handle", "dataset", "objective"])
def test_nul_bytes_and_line_breaks_never_reach_the_csv(tmp_path, field):
    path = tmp_path / "lb.csv"
    for bad in ("a\0b", "a\nb", "a\rb"):
        with pytest.raises(LeaderboardError, match="NUL byte or a line break"):
            leaderboard.append_rows(str(path), [_row(**{field: bad})])
    assert not path.exists()


def test_a_leaderboard_of_the_previous_schema_is_read_and_upgraded(tmp_path):
    """Files written before the `sandbox` column keep working: read with the
    new cell empty, written back with the current header."""
    from benchmark.results import leaderboard as lb

    legacy = lb.LEGACY_HEADERS[0]
    row = lb.make_row(
        source="measured", evaluation="knn", dataset="d", metric="accuracy", value=0.5
    )
    path = tmp_path / "old.csv"
    path.write_text(",".join(legacy) + "\n" + ",".join(row[c] for c in legacy) + "\n")
    (read,) = lb.read_rows(str(path))
    assert read["sandbox"] == "" and read["value"] == row["value"]
    lb.append_rows(str(path), [dict(row, dataset="e")])
    assert path.read_text().splitlines()[0] == ",".join(lb.COLUMNS)
    assert [r["dataset"] for r in lb.read_rows(str(path))] == ["d", "e"]
