"""Results bundles: the unit of results that travels, verifies itself and
merges into a leaderboard.

A bundle is a folder (or a .tar.gz of one) holding:
  rows.csv          the rows, in the leaderboard schema (benchmark.results.leaderboard)
  predictions.json  {row key: {example id: [predicted, true label]}} for the
                    rows whose protocol has per-example outcomes (linear
                    probe, kNN)
  manifest.json     format_version, module handle and URL, module sha256, the
                    config and its overrides, the evaluations run, the module
                    input overrides, code and TensorFlow versions, device,
                    dataset fingerprints, per-evaluation tolerances
  attestation.json  sha256 of the canonical JSON of the rows, of the
                    predictions and of both together ({"rows", "predictions"})
Canonical JSON: sorted keys, no spaces, ASCII. Anyone can recompute the
attestation; a changed value, row or prediction changes it.

Checks (`check`), each failure one line naming the row:
  schema (header, every row through leaderboard.make_row), attestation,
  duplicate keys, value ranges (fractions in [0, 1], finite values), one
  module per bundle whose sha256 is the manifest's, the manifest's code
  version at least MIN_CODE_VERSION; `verify` adds the module's hash
  (fetching it and rehashing its files) and re-runs a sample of the
  evaluations (`rerun`), each value within its tolerance.
"""

import hashlib
import json
import math
import os
import random
import shutil
import tarfile
import tempfile
import uuid

from benchmark.results import leaderboard
from zoo.files import swap_in_folder

FORMAT_VERSION = 1
MIN_CODE_VERSION = (0, 1, 0)
ROWS, PREDICTIONS, MANIFEST, ATTESTATION = (
    "rows.csv",
    "predictions.json",
    "manifest.json",
    "attestation.json",
)
FILES = (ROWS, PREDICTIONS, MANIFEST, ATTESTATION)
DEFAULT_TOLERANCE = 0.02  # absolute, per value; a manifest may set others
RERUN_SAMPLE = 2  # evaluations re-run by rerun="sample"
FRACTION_METRICS = ("accuracy", "top1", "top5", "auc", "r2", "nonzero_fraction")
# Columns that legitimately differ between a run and its re-run.
VOLATILE = (
    "timestamp",
    "seconds",
    "device",
    "code_version",
    "tf_version",
    "sandbox",
    "images_per_s",
)


class BundleError(ValueError):
    """A bundle that cannot be read (bad input, exit 2); one line."""


def canonical(value):
    """Returns the canonical JSON bytes of `value`."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def attestation(rows, predictions):
    """Returns the attestation of rows and predictions."""
    return {
        "rows_sha256": sha256(canonical(rows)),
        "predictions_sha256": sha256(canonical(predictions)),
        "sha256": sha256(canonical({"rows": rows, "predictions": predictions})),
        "row_sha256": {leaderboard.row_key(r): sha256(canonical(r)) for r in rows},
    }


def _parse_version(text):
    head = str(text).split("+", 1)[0]
    try:
        return tuple(int(p) for p in head.split("."))
    except ValueError:
        return None


def check_target(out_dir):
    """Raises BundleError unless a bundle can be written to `out_dir`."""
    out_dir = os.path.abspath(out_dir)
    if os.path.isfile(out_dir):
        raise BundleError(f"--bundle {out_dir} is a file; pass a folder")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not is_bundle(out_dir):
        raise BundleError(
            f"--bundle {out_dir} holds files that are not a results bundle; "
            "pass an empty or new folder"
        )


def write(out_dir, rows, predictions, manifest):
    """Writes a bundle to `out_dir` atomically (staged beside it, renamed) and
    returns its attestation. `out_dir` must be absent, empty or a bundle."""
    out_dir = os.path.abspath(out_dir)
    check_target(out_dir)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(
        parent, f".{os.path.basename(out_dir)}.{uuid.uuid4().hex}.tmp"
    )
    os.makedirs(staging)
    try:
        leaderboard.append_rows(os.path.join(staging, ROWS), rows)
        stored = leaderboard.read_rows(os.path.join(staging, ROWS))
        lock = os.path.join(staging, ROWS + ".lock")  # append_rows' flock file
        if os.path.exists(lock):
            os.remove(lock)
        attest = attestation(stored, predictions)
        for name, data in (
            (PREDICTIONS, predictions),
            (MANIFEST, dict(manifest, format_version=FORMAT_VERSION)),
            (ATTESTATION, attest),
        ):
            with open(os.path.join(staging, name), "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
        swap_in_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return attest


def is_bundle(path):
    return os.path.isdir(path) and all(
        os.path.isfile(os.path.join(path, n)) for n in (ROWS, MANIFEST, ATTESTATION)
    )


class Bundle:
    """A read bundle: rows, predictions, manifest, attestation, its path."""

    def __init__(self, path, rows, predictions, manifest, attest):
        self.path, self.rows, self.predictions = path, rows, predictions
        self.manifest, self.attestation = manifest, attest


def read(path):
    """Returns the Bundle at `path` (a folder or .tar.gz); BundleError when it
    is not readable as one."""
    if os.path.isfile(path) and path.endswith((".tar.gz", ".tgz")):
        from export.archive import ArchiveError, safe_extract

        with tempfile.TemporaryDirectory() as tmp:
            try:
                safe_extract(path, os.path.join(tmp, "b"), max_bytes=1 << 30)
            except (ArchiveError, tarfile.TarError) as e:
                raise BundleError(f"{path}: {e}") from None
            bundle = read(os.path.join(tmp, "b"))
            bundle.path = path
            return bundle
    if not os.path.isdir(path):
        raise BundleError(f"bundle {path} not found; pass a bundle folder or .tar.gz")
    missing = [n for n in FILES if not os.path.isfile(os.path.join(path, n))]
    if missing:
        raise BundleError(f"bundle {path} lacks {', '.join(missing)}")
    try:
        rows = leaderboard.read_rows(os.path.join(path, ROWS))
    except leaderboard.LeaderboardError as e:
        raise BundleError(f"bundle {path}: {e}") from None
    loaded = []
    for name in (PREDICTIONS, MANIFEST, ATTESTATION):
        try:
            with open(os.path.join(path, name)) as f:
                value = json.load(f)
        except (OSError, ValueError) as e:
            raise BundleError(f"bundle {path}: {name} is not JSON ({e})") from None
        if not isinstance(value, dict):
            raise BundleError(f"bundle {path}: {name} is not a JSON object")
        loaded.append(value)
    return Bundle(path, rows, *loaded)


def _where(i, row):
    what = " ".join(row[c] for c in ("evaluation", "dataset", "split", "metric"))
    return f"row {i + 2} ({what})"


def check(bundle):
    """Returns the failures (one line each) of every check that needs no
    module and no re-run; [] when the bundle holds."""
    problems = []
    manifest = bundle.manifest
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(
            f"manifest format_version {manifest.get('format_version')!r}, this code "
            f"reads {FORMAT_VERSION}"
        )
    version = _parse_version(manifest.get("code_version", ""))
    if version is None or version < MIN_CODE_VERSION:
        problems.append(
            f"manifest code_version {manifest.get('code_version')!r} is older than "
            f"{'.'.join(map(str, MIN_CODE_VERSION))}; rerun with current code"
        )
    got = attestation(bundle.rows, bundle.predictions)
    if got != bundle.attestation:
        claimed = bundle.attestation.get("row_sha256") or {}
        changed = [
            _where(i, r)
            for i, r in enumerate(bundle.rows)
            if claimed.get(leaderboard.row_key(r))
            != got["row_sha256"][leaderboard.row_key(r)]
        ]
        problems += [f"{w}: changed since the bundle was attested" for w in changed]
        if not changed:
            which = [
                k
                for k in ("rows_sha256", "predictions_sha256")
                if got[k] != bundle.attestation.get(k)
            ]
            problems.append(
                f"attestation does not match: {', '.join(which) or 'sha256'} changed "
                "since the bundle was written"
            )
    seen = {}
    for i, row in enumerate(bundle.rows):
        where = _where(i, row)
        try:
            leaderboard.make_row(**row)
        except leaderboard.LeaderboardError as e:
            problems.append(f"{where}: {e}")
            continue
        key = leaderboard.row_key(row)
        if key in seen:
            problems.append(f"{where}: duplicate key of row {seen[key] + 2}")
        seen[key] = i
        try:
            value = float(row["value"])
        except ValueError:
            problems.append(f"{where}: value {row['value']!r} is not a number")
            continue
        if not math.isfinite(value):
            problems.append(f"{where}: value {value} is not finite")
        base = row["metric"].split(":", 1)[0]
        if (
            base in FRACTION_METRICS or base.startswith("auc")
        ) and not 0.0 <= value <= 1.0:
            problems.append(f"{where}: {base} {value} is outside [0, 1]")
        if row["module_sha256"] != manifest.get("module_sha256"):
            problems.append(
                f"{where}: module_sha256 {row['module_sha256'][:12]} is not the "
                f"manifest's {str(manifest.get('module_sha256'))[:12]}"
            )
        predictions = bundle.predictions.get(key)
        if (
            predictions is not None
            and row["test_size"]
            and int(row["test_size"]) != len(predictions)
        ):
            problems.append(
                f"{where}: {len(predictions)} predictions for {row['test_size']} test "
                "examples"
            )
    return problems


def check_module(bundle, resolve):
    """Returns the failures of the module check: `resolve(handle)` returns
    the local module folder (fetched and scanned), whose files must hash to
    the manifest's module_sha256."""
    from benchmark.modules.loading import module_sha256

    handle = bundle.manifest.get("handle")
    if not handle:
        return ["manifest names no module handle"]
    try:
        path = resolve(handle)
    except ValueError as e:
        return [f"module {handle} cannot be fetched: {e}"]
    got = module_sha256(path)
    if got != bundle.manifest.get("module_sha256"):
        return [
            f"module {handle} hashes to {got[:12]}, the bundle claims "
            f"{str(bundle.manifest.get('module_sha256'))[:12]}"
        ]
    return []


def sample_evaluations(bundle, rerun, seed=0):
    """Returns the evaluations to re-run: none, a seeded sample of
    RERUN_SAMPLE, or all."""
    evaluations = sorted({r["evaluation"] for r in bundle.rows})
    if rerun == "none":
        return []
    if rerun == "all":
        return evaluations
    return sorted(
        random.Random(seed).sample(evaluations, min(RERUN_SAMPLE, len(evaluations)))
    )


def compare(bundle, rerun_rows, evaluations):
    """Returns one line per bundle row of `evaluations` whose re-run value is
    missing or differs by more than its tolerance."""
    tolerances = bundle.manifest.get("tolerances", {})
    fresh = {
        (r["evaluation"], r["dataset"], r["split"], r["metric"]): float(r["value"])
        for r in rerun_rows
    }
    problems = []
    for i, row in enumerate(bundle.rows):
        if row["evaluation"] not in evaluations:
            continue
        where = _where(i, row)
        key = (row["evaluation"], row["dataset"], row["split"], row["metric"])
        tolerance = float(tolerances.get(row["evaluation"], DEFAULT_TOLERANCE))
        if key not in fresh:
            problems.append(f"{where}: the re-run did not measure it")
        elif abs(fresh[key] - float(row["value"])) > tolerance:
            problems.append(
                f"{where}: bundle {float(row['value']):.6g}, re-run {fresh[key]:.6g}, "
                f"tolerance {tolerance:g}"
            )
    return problems
