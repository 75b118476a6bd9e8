"""The CI gate: compare a benchmark run with a baseline, metric by metric,
with a paired test on the shared test examples, and report in the formats CI
systems read.

Baseline JSON (`--baseline=FILE`, written by `--update_baseline`):
  {"format_version": 1, "config", "code_version", "module_sha256", "seeds",
   "metrics": [{"evaluation", "dataset", "split", "metric", "value",
                "direction": "higher" | "lower",
                "tolerance": {"absolute", "relative", "z"},
                "outcomes": {example id: 0 | 1} (per-example correctness),
                "stderr": standard error (when there are no outcomes)}]}

A metric fails when it moved the wrong way by more than

  max(absolute, relative x |baseline|, z x paired standard error)

where the paired standard error comes from the examples both runs scored:
with d_i = correct_run(i) - correct_baseline(i), SE = sd(d) / sqrt(n) (the
normal form of McNemar's test on the discordant pairs). Only examples with
the same id on both sides count; an unpaired test is never used. Without
outcomes the baseline's `stderr` is used (sqrt(2) x, for the difference of
two independent estimates). Each metric is judged on its own.

Exit codes of `zoo-benchmark --baseline`: 0 within tolerance, 1 a
regression, 2 bad input, 3 module or data unreachable, 4 baseline and run
differ in shape (a metric on one side only).
"""

import dataclasses
import json
import math
import xml.etree.ElementTree as ET

import numpy as np

from benchmark.results import leaderboard
from benchmark.results.markdown import markdown_table
from zoo.files import write_atomic

FORMAT_VERSION = 1
LOWER_IS_BETTER = leaderboard.LOWER_IS_BETTER
DEFAULT_TOLERANCE = {"absolute": 0.005, "relative": 0.0, "z": 3.0}
PASS, REGRESSION, BAD_INPUT, UNREACHABLE, SHAPE = 0, 1, 2, 3, 4


class GateError(ValueError):
    """A baseline that cannot be read (exit 2); one line."""


def metric_key(m):
    return (m["evaluation"], m["dataset"], m["split"], m["metric"])


def name(key):
    return "/".join(key)


def outcomes_of(predictions):
    """Returns {example id: 1 if correct else 0} of bundle-style predictions
    ({id: [predicted, true]})."""
    return {i: int(p[0] == p[1]) for i, p in predictions.items()}


def paired_stderr(run, base):
    """Returns (standard error of the mean paired difference, n shared)."""
    shared = sorted(set(run) & set(base))
    if len(shared) < 2:
        return None, len(shared)
    d = np.array([run[i] - base[i] for i in shared], dtype=np.float64)
    return float(d.std(ddof=1) / math.sqrt(len(d))), len(shared)


def unpaired_stderr(run, base):
    """Returns the standard error of a difference of two proportions treated
    as independent samples (shown for comparison; never used to judge)."""
    p1, p2 = np.mean(list(run.values())), np.mean(list(base.values()))
    return float(math.sqrt(p1 * (1 - p1) / len(run) + p2 * (1 - p2) / len(base)))


@dataclasses.dataclass
class Judgement:
    key: tuple
    baseline: float | None
    value: float | None
    allowed: float = 0.0
    paired_se: float | None = None
    shared: int = 0
    verdict: str = "pass"  # pass | regression | missing_in_run | missing_in_baseline
    direction: str = "higher"

    @property
    def drop(self):
        if self.baseline is None or self.value is None:
            return None
        sign = 1.0 if self.direction == "higher" else -1.0
        return sign * (self.baseline - self.value)

    def message(self):
        if self.verdict == "missing_in_run":
            where = name(self.key)
            return f"{where}: in the baseline ({self.baseline:.6g}) but not measured"
        if self.verdict == "missing_in_baseline":
            return (
                f"{name(self.key)}: measured ({self.value:.6g}) but not in the baseline"
            )
        se = (
            f", paired SE {self.paired_se:.4g} over {self.shared}"
            if self.paired_se
            else ""
        )
        return (
            f"{name(self.key)}: baseline {self.baseline:.6g}, value {self.value:.6g}, "
            f"drop {self.drop:+.4g}, tolerance {self.allowed:.4g}{se}"
        )


def load_baseline(path):
    """Returns the baseline dict at `path`; GateError when unreadable."""
    try:
        with open(path) as f:
            baseline = json.load(f)
    except FileNotFoundError:
        raise GateError(
            f"baseline {path} not found; create it with --update_baseline"
        ) from None
    except (OSError, ValueError) as e:
        raise GateError(f"baseline {path} is not JSON ({e})") from None
    if not isinstance(baseline, dict) or not isinstance(baseline.get("metrics"), list):
        raise GateError(f"baseline {path} has no list 'metrics'")
    for i, m in enumerate(baseline["metrics"]):
        missing = [
            k
            for k in ("evaluation", "dataset", "split", "metric", "value")
            if k not in m
        ]
        if missing:
            raise GateError(f"baseline {path}: metric {i} lacks {', '.join(missing)}")
        if not isinstance(m["value"], (int, float)) or not math.isfinite(m["value"]):
            raise GateError(
                f"baseline {path}: metric {i} value {m['value']!r} is not finite"
            )
    return baseline


def run_metrics(rows, predictions, tolerance=None):
    """Returns the baseline-format metrics of a run's rows and predictions."""
    metrics = []
    for row in rows:
        outcomes = predictions.get(leaderboard.row_key(row))
        base = row["metric"].split(":", 1)[0]
        m = {
            "evaluation": row["evaluation"],
            "dataset": row["dataset"],
            "split": row["split"],
            "metric": row["metric"],
            "value": float(row["value"]),
            "direction": "lower" if base in LOWER_IS_BETTER else "higher",
            "tolerance": dict(tolerance or DEFAULT_TOLERANCE),
        }
        if outcomes:
            m["outcomes"] = outcomes_of(outcomes)
        metrics.append(m)
    return metrics


def judge(baseline, metrics):
    """Returns one Judgement per metric of either side."""
    base = {metric_key(m): m for m in baseline["metrics"]}
    run = {metric_key(m): m for m in metrics}
    out = []
    for key in sorted(set(base) | set(run)):
        b, r = base.get(key), run.get(key)
        if r is None:
            out.append(Judgement(key, b["value"], None, verdict="missing_in_run"))
            continue
        if b is None:
            out.append(Judgement(key, None, r["value"], verdict="missing_in_baseline"))
            continue
        tol = {**DEFAULT_TOLERANCE, **(b.get("tolerance") or {})}
        direction = b.get("direction", r["direction"])
        se, shared = None, 0
        if b.get("outcomes") and r.get("outcomes"):
            se, shared = paired_stderr(r["outcomes"], b["outcomes"])
        elif b.get("stderr") is not None:
            se = math.sqrt(2.0) * float(b["stderr"])
        allowed = max(
            float(tol["absolute"]),
            float(tol["relative"]) * abs(b["value"]),
            float(tol["z"]) * (se or 0.0),
        )
        j = Judgement(
            key, b["value"], r["value"], allowed, se, shared, direction=direction
        )
        if j.drop > allowed:
            j.verdict = "regression"
        out.append(j)
    return out


def exit_code(judgements):
    if any(j.verdict.startswith("missing") for j in judgements):
        return SHAPE
    if any(j.verdict == "regression" for j in judgements):
        return REGRESSION
    return PASS


def write_baseline(path, metrics, manifest):
    """Writes the baseline JSON atomically."""
    data = {
        "format_version": FORMAT_VERSION,
        "config": manifest.get("config"),
        "code_version": manifest.get("code_version"),
        "module_sha256": manifest.get("module_sha256"),
        "seeds": manifest.get("seeds", []),
        "metrics": metrics,
    }
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def junit_xml(judgements, suite="zoo-benchmark"):
    """Returns a JUnit XML string: one testcase per metric."""
    root = ET.Element("testsuites")
    failures = sum(j.verdict != "pass" for j in judgements)
    ts = ET.SubElement(
        root,
        "testsuite",
        name=suite,
        tests=str(len(judgements)),
        failures=str(failures),
    )
    for j in judgements:
        case = ET.SubElement(ts, "testcase", classname=suite, name=name(j.key))
        if j.verdict != "pass":
            failure = ET.SubElement(
                case, "failure", message=j.message(), type=j.verdict
            )
            failure.text = j.message()
    return ET.tostring(root, encoding="unicode")


def step_summary(judgements):
    """Returns GitHub step-summary markdown."""
    fmt = lambda v: "" if v is None else f"{v:.4f}"  # noqa: E731
    header = ("metric", "baseline", "value", "drop", "tolerance", "verdict")
    rows = [
        (name(j.key), fmt(j.baseline), fmt(j.value), fmt(j.drop),
         f"{j.allowed:.4f}", j.verdict)
        for j in judgements
    ]  # fmt: skip
    table = markdown_table(header, rows, numeric=(1, 2, 3, 4))
    return "### zoo-benchmark gate\n\n" + table + "\n"


def benchmark_json(judgements):
    """Returns github-action-benchmark's custom format (bigger is better)."""
    return [
        {
            "name": name(j.key),
            "unit": "fraction",
            "value": j.value,
            "range": f"± {j.paired_se:.4f}" if j.paired_se else "",
        }
        for j in judgements
        if j.value is not None
    ]
