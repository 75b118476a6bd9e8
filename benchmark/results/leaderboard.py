"""The long-form results CSV: one row per (module, evaluation, dataset, metric).

Rows measured here have source "measured"; numbers reported in papers have
source "paper:<citation>". Accuracy-like values (accuracy, top1, top5, auc) are
stored as fractions in [0, 1] in both cases; `protocol` and `selected` are
JSON objects serialised with sorted keys so equal settings compare equal.
Appends are atomic and serialised across processes by an flock.
"""

import contextlib
import csv
import datetime
import fcntl
import json
import math
import os

from benchmark.results import fingerprint, names
from benchmark.results.markdown import markdown_table
from zoo.files import atomic_path

# The curated leaderboard (the paper's rows and merged submissions), shipped
# with the package; the repository's top-level leaderboard.csv links to it.
CURATED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "leaderboard.csv")
COLUMNS = (
    "source",
    "timestamp",
    "handle",
    "module_sha256",
    "arch",
    "objective",
    "pretrain_dataset",
    "evaluation",
    "dataset",
    "split",
    "train_size",
    "test_size",
    "metric",
    "value",
    "protocol",
    "selected",
    "seed",
    "code_version",
    "tf_version",
    "device",
    "seconds",
    "sandbox",
    "fingerprint",
    "params",
    "feature_dim",
    "image_size",
    "gmacs",
    "module_mb",
    "images_per_s",
    "throughput_batch",
    "name",
)
# Headers of earlier versions, read as COLUMNS with the missing cells empty
# (and written back with the current header).
LEGACY_HEADERS = (COLUMNS[:21], COLUMNS[:22], COLUMNS[:30])
# The model metadata columns (benchmark.modules.cost), shown and sorted by.
MODEL_COLUMNS = COLUMNS[23:30]

# A later row with the same key replaces the earlier one.
KEY_COLUMNS = (
    "source",
    "handle",
    "module_sha256",
    "arch",
    "objective",
    "pretrain_dataset",
    "evaluation",
    "dataset",
    "split",
    "metric",
    "protocol",
)

REQUIRED_COLUMNS = ("evaluation", "dataset", "metric", "value", "source")
JSON_COLUMNS = ("protocol", "selected")
MEASURED = "measured"
PAPER_PREFIX = "paper:"

PAPER_EVALUATIONS = names.PAPER_EVALUATIONS
# Chexpert's two settings, as the measured rows' split.
PAPER_CHEXPERT_SPLITS = {
    "chexpert_official_val": "train->valid",
    "chexpert_iid_split": "train->iid",
}
# Evaluations whose split names a setting, shown as its own table column.
SETTING_EVALUATIONS = frozenset({"chexpert"})
# Metrics summarised when a run ends (the rest stay in the CSV).
HEADLINE_METRICS = frozenset(
    {"accuracy", "r2", "auc_mean", "top1", "mce", "mean_corruption_error", "nll", "ece"}
)
# Metrics the paper prints in percent and the leaderboard stores as fractions.
PERCENT_METRICS = frozenset({"accuracy", "top1", "top5", "auc"})
# Metrics where smaller is better, for ranking.
LOWER_IS_BETTER = frozenset({"mce", "nll", "ece", "error"})
# Columns of ranked_table that identify one module.
MODULE_COLUMNS = ("source", "handle", "module_sha256", "arch", "objective")


class LeaderboardError(ValueError):
    """An invalid row or leaderboard file; the message says how to fix it."""


def make_row(**fields):
    """Returns a validated leaderboard row: a dict of COLUMNS -> str.

    Unset columns are "" except `timestamp` (UTC ISO-8601 now for measured
    rows; reported rows may leave it empty), `protocol` / `selected` ("{}")
    and `fingerprint` (a reported row's is computed: results.fingerprint).
    `value` must be a finite number and is written with repr(float).
    """
    unknown = sorted(set(fields) - set(COLUMNS))
    if unknown:
        raise LeaderboardError(
            f"unknown leaderboard column(s) {', '.join(unknown)}; "
            f"valid columns: {', '.join(COLUMNS)}"
        )
    missing = [c for c in REQUIRED_COLUMNS if fields.get(c) in (None, "")]
    if missing:
        raise LeaderboardError(f"leaderboard row lacks {', '.join(missing)}")
    row = {column: _cell(column, fields.get(column)) for column in COLUMNS}
    _check_source(row["source"])
    if row["source"] == MEASURED and not row["timestamp"]:
        row["timestamp"] = _utc_now()
    if not row["fingerprint"] and row["source"] != MEASURED:
        row["fingerprint"] = fingerprint.of_row(row)
    return row


def row_key(row):
    """Returns a row's identity (its KEY_COLUMNS) as one JSON string."""
    return json.dumps([row.get(c, "") for c in KEY_COLUMNS])


def read_rows(path):
    """Returns the rows of the leaderboard at `path` ([] if it does not exist)."""
    if os.path.isdir(path):
        raise LeaderboardError(
            f"leaderboard {path} is a directory; pass --leaderboard=FILE.csv"
        )
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return []
        columns = tuple(header)
        if columns != COLUMNS and columns not in LEGACY_HEADERS:
            raise LeaderboardError(
                f"{path} has a foreign header (expected the {len(COLUMNS)} columns "
                f"{COLUMNS[0]},...,{COLUMNS[-1]} of "
                "benchmark.results.leaderboard.COLUMNS); "
                "write to a new file with --leaderboard=PATH or fix the header"
            )
        rows = []
        for line, values in enumerate(reader, start=2):
            if len(values) != len(columns):
                raise LeaderboardError(
                    f"{path}:{line} has {len(values)} fields, expected "
                    f"{len(columns)}; fix or delete that line"
                )
            row = dict.fromkeys(COLUMNS, "")
            row.update(zip(columns, values))
            rows.append(row)
    return rows


def append_rows(path, rows):
    """Returns the number of rows written after merging `rows` into `path`.

    All rows are validated (make_row) before the file is touched. Under an
    exclusive flock on `path + ".lock"` the existing rows are read (a foreign
    header raises and writes nothing), merged with the new ones, deduplicated
    by KEY_COLUMNS (later rows win and move to the end) and written to a temp
    file in the same directory, fsynced and renamed over `path` (os.replace),
    so readers never see a partial file and concurrent writers lose nothing.
    A symlinked path acts on its target (`writable_path`).
    """
    new_rows = _dedupe([make_row(**row) for row in rows])
    path = writable_path(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with _locked(path):
        merged = _dedupe(read_rows(path) + new_rows)
        _write_atomic(path, merged)
    return len(new_rows)


def writable_path(path):
    """Returns the real file a leaderboard path names, after checking that it
    can be replaced: symlinks are resolved (the lock and the atomic rename
    then act on the file every name shares, so writers through a link and
    through the file serialise and the link stays a link); a directory, a
    read-only file or a folder that cannot be written is a LeaderboardError
    naming the fix."""
    real = os.path.realpath(os.path.expanduser(path))
    if os.path.isdir(real):
        raise LeaderboardError(
            f"leaderboard {path} is a directory; pass --leaderboard=FILE.csv"
        )
    # The mode bits, not os.access: root may write anything, yet a file made
    # read-only says "do not replace me" to every user.
    if os.path.exists(real) and not (
        os.stat(real).st_mode & 0o222 and os.access(real, os.W_OK)
    ):
        raise LeaderboardError(
            f"leaderboard {path} is read-only; make it writable (chmod u+w) or "
            "pass --leaderboard naming another file"
        )
    parent = os.path.dirname(real)
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise LeaderboardError(
            f"cannot write the leaderboard's folder {existing}; pass "
            "--leaderboard naming a file in a writable folder"
        )
    return real


def paper_rows(csv_path):
    """Returns leaderboard rows for the reported numbers in `csv_path`.

    Input columns: source,table,arch,loss,evaluation,dataset,metric,value
    (the paper's tables in long form). Names become the measured rows' names
    (PAPER_EVALUATIONS): "finetune" -> fine_tune; "imagenet" -> imagenet_ood
    on imagenet2012's validation split; class separation on
    "imagenet2012_train" -> dataset imagenet2012, split train; Chexpert's
    "chexpert_official_val" / "chexpert_iid_split" with a pathology as
    dataset -> evaluation chexpert, dataset chexpert, split train->valid /
    train->iid, metric auc_<pathology>. Percentages become fractions; the
    table goes into `protocol`; all modules were pretrained on ImageNet.
    """
    with open(csv_path, newline="") as f:
        records = list(csv.DictReader(f))
    return [_paper_row(r) for r in records]


def _paper_row(r):
    """Returns the leaderboard row of one reported number."""
    evaluation, dataset, metric = r["evaluation"], r["dataset"], r["metric"]
    split = ""
    if evaluation in PAPER_CHEXPERT_SPLITS:
        split = PAPER_CHEXPERT_SPLITS[evaluation]
        dataset, metric = "chexpert", f"{metric}_{dataset}"
    elif evaluation == "imagenet":
        split = "validation"
    elif evaluation == "class_separation" and dataset.endswith("_train"):
        dataset, split = dataset[: -len("_train")], "train"
    return make_row(
        source=r["source"],
        arch=r["arch"],
        objective=r["loss"],
        pretrain_dataset="imagenet2012",
        evaluation=PAPER_EVALUATIONS.get(evaluation, evaluation),
        dataset=dataset,
        split=split,
        metric=metric,
        value=_paper_value(r["metric"], r["value"]),
        protocol={"table": r["table"]},
    )


def seed_leaderboard(path, paper_csv):
    """Returns the number of reported rows merged from `paper_csv` into `path`."""
    return append_rows(path, paper_rows(paper_csv))


def ranked_table(rows, rank_by="linear_probe", dataset=None):
    """Returns a markdown table with one line per module, best first.

    A module is one (source, handle, module_sha256, arch, objective). Columns:
    rank, objective, arch, one "evaluation/dataset/metric" column per result
    present (the ranking column first), and handle (the source when a row has
    no handle, as for reported rows). Modules are sorted by the first column
    whose evaluation is `rank_by` (and dataset is `dataset` when given); those
    without it come last. Equal values share a rank.
    """
    columns = _result_columns(rows, rank_by)
    rank_col = _rank_column(columns, rank_by, dataset)
    columns.remove(rank_col)
    columns.insert(0, rank_col)
    modules = {}
    for row in rows:
        module = tuple(row[c] for c in MODULE_COLUMNS)
        results = modules.setdefault(module, {})
        results[_column_name(row)] = float(row["value"])
    sign = 1.0 if _metric_of(rank_col) in LOWER_IS_BETTER else -1.0
    order = sorted(modules, key=lambda m: _sort_key(modules[m].get(rank_col), sign, m))
    header = ["rank", "objective", "arch", *columns, "handle"]
    lines = []
    ranks = _ranks([modules[m].get(rank_col) for m in order])
    for rank, module in zip(ranks, order):
        source, handle, _, arch, objective = module
        values = [_format_value(c, modules[module].get(c)) for c in columns]
        lines.append([rank, objective, arch, *values, handle or source])
    return _markdown(header, lines, numeric=range(3, 3 + len(columns)))


def summary_table(rows):
    """Returns a markdown table of a run's headline rows (HEADLINE_METRICS):
    evaluation, dataset, split, metric and value, in run order."""
    lines = [
        [
            r["evaluation"],
            r["dataset"],
            r["split"],
            r["metric"],
            format_metric(r["metric"], float(r["value"])),
        ]
        for r in rows
        if r["metric"] in HEADLINE_METRICS
    ]
    header = ["evaluation", "dataset", "split", "metric", "value"]
    return _markdown(header, lines, numeric=[4])


def _cell(column, value):
    """Returns `value` as the string stored in `column`."""
    if column in JSON_COLUMNS:
        return _canonical_json(column, value)
    if value is None:
        return ""
    if column == "value":
        return _finite_repr(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(c in text for c in "\0\r\n"):
        raise LeaderboardError(
            f"{column} holds a NUL byte or a line break ({text[:40]!r}); "
            "leaderboard cells are single-line text"
        )
    return text


def _canonical_json(column, value):
    """Returns a JSON object (dict or JSON text) dumped with sorted keys."""
    if value is None or value == "":
        value = {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise LeaderboardError(f"{column} is not valid JSON ({e}): {value!r}")
    if not isinstance(value, dict):
        raise LeaderboardError(f"{column} must be a JSON object, got {value!r}")
    return json.dumps(value, sort_keys=True, default=_json_default)


def _json_default(value):
    """Returns numpy scalars/arrays as Python numbers/lists for json.dumps."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _finite_repr(value):
    """Returns repr(float(value)), or raises LeaderboardError if not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise LeaderboardError(f"value must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise LeaderboardError(f"value must be finite, got {number}")
    return repr(number)


def _check_source(source):
    """Raises LeaderboardError unless source is "measured" or "paper:<citation>"."""
    if source != MEASURED and not (
        source.startswith(PAPER_PREFIX) and len(source) > len(PAPER_PREFIX)
    ):
        raise LeaderboardError(
            f"source must be '{MEASURED}' or '{PAPER_PREFIX}<citation>', got {source!r}"
        )


def _utc_now():
    """Returns the current UTC time as ISO-8601 with seconds and offset."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _paper_value(metric, value):
    """Returns a reported value as stored: percentages divided by 100."""
    if metric in PERCENT_METRICS:
        # Rounding drops float noise (94.24 / 100 -> 0.9424, not 0.94239999...).
        return round(float(value) / 100.0, 10)
    return float(value)


def _dedupe(rows):
    """Returns rows with one row per KEY_COLUMNS key, the last one, in order."""
    latest = {}
    for row in rows:
        key = tuple(row[c] for c in KEY_COLUMNS)
        latest.pop(key, None)  # Re-inserting moves the key to the end.
        latest[key] = row
    return list(latest.values())


@contextlib.contextmanager
def _locked(path):
    """Holds an exclusive flock on `path + ".lock"` for the with-block."""
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_atomic(path, rows):
    """Writes header + rows to `path` through zoo.files.atomic_path, keeping
    the file's permissions."""
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        os.chmod(tmp, mode)


def _column_name(row):
    """Returns the ranked_table column of a row: evaluation/dataset/metric, with
    the setting ("@valid", "@iid") for evaluations whose split names one."""
    name = f"{row['evaluation']}/{row['dataset']}/{row['metric']}"
    if row["evaluation"] in SETTING_EVALUATIONS and row["split"]:
        name += "@" + row["split"].rsplit("->", 1)[-1]
    return name


def _result_columns(rows, rank_by):
    """Returns the distinct result columns, grouped by evaluation.

    The `rank_by` group comes first, then the other evaluations in order of
    first appearance; within a group, columns keep their order of appearance.
    """
    columns = list(dict.fromkeys(_column_name(row) for row in rows))
    evaluations = list(dict.fromkeys(c.split("/", 1)[0] for c in columns))

    def group(column):
        evaluation = column.split("/", 1)[0]
        return (evaluation != rank_by, evaluations.index(evaluation))

    return sorted(columns, key=group)  # Stable: appearance order within groups.


def _rank_column(columns, rank_by, dataset):
    """Returns the first column of evaluation `rank_by` (on `dataset` if given)."""
    for column in columns:
        evaluation, column_dataset, _ = column.split("/", 2)
        if evaluation == rank_by and dataset in (None, column_dataset):
            return column
    present = sorted({c.split("/", 1)[0] for c in columns}) or ["none"]
    where = f" on dataset '{dataset}'" if dataset else ""
    raise LeaderboardError(
        f"no '{rank_by}' results{where} to rank by; evaluations present: "
        f"{', '.join(present)}"
    )


def _sort_key(value, sign, module):
    """Returns the sort key: present values best first (sign * value ascending)."""
    if value is None:
        return (1, 0.0, module)
    return (0, sign * value, module)


def _ranks(values):
    """Returns competition ranks ("1", "1", "3", ...) of sorted values; "-" if None."""
    ranks = []
    for i, value in enumerate(values):
        if value is None:
            ranks.append("-")
        elif i and value == values[i - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(str(i + 1))
    return ranks


def _metric_of(column):
    """Returns the metric of a ranked_table column (without its setting)."""
    return column.rsplit("/", 1)[1].split("@", 1)[0]


def _format_value(column, value):
    """Returns a column's value for display (see `format_metric`)."""
    return format_metric(_metric_of(column), value)


def format_metric(metric, value):
    """Returns a value for display: percent (1 decimal), r2 (3 decimals), else 4 sig."""
    if value is None:
        return ""
    if metric in PERCENT_METRICS:
        return f"{100.0 * value:.1f}"
    if metric == "r2":
        return f"{value:.3f}"
    return f"{value:.4g}"


def _markdown(header, lines, numeric):
    """Returns a padded markdown table; `numeric` columns right-aligned."""
    return markdown_table(header, lines, numeric, pad=True)
