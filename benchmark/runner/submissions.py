"""The maintainer's side of results bundles: verify a submitted bundle
(checks, module hash, re-runs) and merge verified bundles into a leaderboard.
docs/submissions.md describes the flow and the pull-request check."""

import os
import subprocess
import sys
import tempfile

from benchmark.results import bundle as bundles
from benchmark.results import leaderboard
from benchmark.results.markdown import markdown_table

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bundle_request(b):
    """Returns the RunRequest bundle `b` was measured with: the one its
    manifest stores, or, for a bundle written before requests existed, one
    rebuilt from its handle, config, overrides and load options."""
    from benchmark.runner.request import ModuleOptions, RunRequest

    manifest = b.manifest
    if manifest.get("request"):
        return RunRequest.from_dict(manifest["request"])
    load = {k: v for k, v in (manifest.get("load") or {}).items() if v is not None}
    if "value_range" in load and not isinstance(load["value_range"], str):
        load["value_range"] = ",".join(str(v) for v in load["value_range"])
    return RunRequest(
        module=manifest["handle"],
        config=manifest.get("config", "smoke"),
        overrides=tuple(manifest.get("overrides", [])),
        options=ModuleOptions(**load),
    )


def rerun_rows(b, evaluations, sandbox="auto", report=print):
    """Re-runs `evaluations` of bundle `b` on this machine from its stored
    request (zoo-benchmark --request, sandboxed by default) and returns
    (rows, failure line or None)."""
    with tempfile.TemporaryDirectory() as tmp:
        board = os.path.join(tmp, "rerun.csv")
        request = bundle_request(b).replace(
            evaluations=tuple(evaluations),
            leaderboard=board,
            cache_dir=os.path.join(tmp, "cache"),
            bundle=None,
            sandbox=sandbox,
        )
        path = os.path.join(tmp, "request.json")
        request.write(path)
        cmd = [sys.executable, "-m", "benchmark.cli.benchmark", f"--request={path}"]
        report(f"[verify] re-running {', '.join(evaluations)} of {request.module}")
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["(no message)"]
            return [], f"the re-run failed: {lines[-1]}"
        return leaderboard.read_rows(board), None


def comparison_table(b, rerun, evaluations):
    """Returns the reviewers' markdown table: every row, its re-run value and
    the verdict."""
    fresh = {
        (r["evaluation"], r["dataset"], r["split"], r["metric"]): float(r["value"])
        for r in rerun
    }
    tolerances = b.manifest.get("tolerances", {})
    header = "evaluation dataset split metric bundle re-run tolerance verdict"
    lines = []
    for row in b.rows:
        key = (row["evaluation"], row["dataset"], row["split"], row["metric"])
        tolerance = float(tolerances.get(row["evaluation"], bundles.DEFAULT_TOLERANCE))
        value = float(row["value"])
        if row["evaluation"] not in evaluations:
            again, verdict = "", "not re-run"
        elif key not in fresh:
            again, verdict = "missing", "FAIL"
        else:
            again = f"{fresh[key]:.4f}"
            verdict = "ok" if abs(fresh[key] - value) <= tolerance else "FAIL"
        lines.append((*key, f"{value:.4f}", again, f"{tolerance:g}", verdict))
    return markdown_table(header.split(), lines, numeric=(4, 5, 6))


def verify(path, rerun="sample", sandbox="auto", resolve=None, report=print):
    """Returns the failures of bundle `path` (one line each; [] = it holds).
    Raises BundleError when it cannot be read at all."""
    b = bundles.read(path)
    problems = bundles.check(b)
    if resolve is None:
        from benchmark.modules.loading import resolve_handle as resolve
    problems += bundles.check_module(b, resolve)
    evaluations = bundles.sample_evaluations(b, rerun)
    rows = []
    if evaluations and not problems:
        rows, failure = rerun_rows(b, evaluations, sandbox=sandbox, report=report)
        problems += [failure] if failure else bundles.compare(b, rows, evaluations)
    report(comparison_table(b, rows, evaluations if not problems or rows else []))
    return problems


def portable_spec(spec):
    """Returns a dataset spec without the machine's folders: an image folder
    or Chexpert folder given by path becomes `imagefolder:NAME` /
    `chexpert:NAME` (NAME its folder name); other specs are returned as they
    are."""
    from benchmark.report.views import short_dataset

    if spec.startswith(("/", ".", "~")):  # a bare image folder path
        spec = f"imagefolder:{spec}"
    kind = spec.partition(":")[0]
    if kind == "imagefolder":
        return f"imagefolder:{short_dataset(spec)}"
    return short_dataset(spec) if kind == "chexpert" else spec


def portable_row(row, root):
    """Returns `row` as a curated board keeps it: dataset specs through
    portable_spec and a local module handle relative to `root` (the board's
    folder). Raises ValueError for a local handle outside `root`, which no
    one else could find."""
    row = dict(row)
    for column in ("dataset", "pretrain_dataset"):
        if row.get(column):
            row[column] = portable_spec(row[column])
    handle = row.get("handle", "")
    if handle and "://" not in handle and os.path.isabs(handle):
        relative = os.path.relpath(handle, root)
        if relative.startswith(".."):
            raise ValueError(
                f"module {handle} is a local path outside {root}; publish the "
                "module and merge a bundle whose handle is its URL"
            )
        row["handle"] = relative
    return row


def merge(board, paths, portable=False):
    """Appends the rows of the bundles at `paths` to `board` in one atomic
    write; returns the number of rows. A bundle that fails its checks, or a
    row whose key the leaderboard holds with another value, is refused
    (ValueError naming it) and nothing is written. `portable`: rows go in
    through portable_row (no folder of this machine in the board)."""
    existing = {leaderboard.row_key(r): r for r in leaderboard.read_rows(board)}
    root = os.path.dirname(os.path.abspath(board))
    new, problems = {}, []
    for path in paths:
        b = bundles.read(path)
        problems += [f"{path}: {p}" for p in bundles.check(b)]
        for row in b.rows:
            if portable:
                try:
                    row = portable_row(row, root)
                except ValueError as e:
                    problems.append(f"{path}: {e}")
                    break
            key = leaderboard.row_key(row)
            for other in (existing.get(key), new.get(key)):
                if other is not None and other["value"] != row["value"]:
                    problems.append(
                        f"{path}: {row['evaluation']} {row['dataset']} {row['metric']} "
                        f"is {row['value']} here and {other['value']} already"
                    )
            new[key] = row
    if problems:
        raise MergeConflict(problems)
    leaderboard.append_rows(board, list(new.values()))
    return len(new)


class MergeConflict(Exception):
    """Bundles that cannot be merged; `problems` holds one line each."""

    def __init__(self, problems):
        super().__init__(f"{len(problems)} problems")
        self.problems = problems
