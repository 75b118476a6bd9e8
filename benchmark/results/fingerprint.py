"""Protocol fingerprints: a short hash of what a row was measured with, so
that only rows measured the same way are ranked together.

A measured row's fingerprint hashes (canonical JSON, sha256, first
LENGTH hex digits)

  {"evaluator": its name and every setting (Evaluator.protocol()),
   "version": the evaluator's `version`,
   "dataset": the dataset's name, "data": its content fingerprint,
   "split": the split(s) it was fitted and tested on,
   "preprocessing": how images were resized and cropped}

The module's own input contract (its size and normalisation) is not part
of it: that is the module's, and is recorded in the row's protocol. A
reported row's fingerprint hashes its citation, evaluation, dataset and
split: the paper's protocol as the paper writes it, one per evaluation.
A row written before fingerprints existed gets one from its protocol column
(less the config name and the module's contract).
"""

import hashlib
import json

LENGTH = 12
# The keys of benchmark.features.extract.preprocessing that describe the
# benchmark's preprocessing rather than the module's contract.
PREPROCESSING_KEYS = ("resize", "interpolation", "crop", "crop_fraction")


def digest(parts):
    """Returns the fingerprint of a JSON-able dict."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:LENGTH]


def measured(protocol, version, dataset, data, split, preprocessing):
    """Returns the fingerprint of a measured row (module docstring)."""
    return digest(
        {
            "evaluator": protocol,
            "version": version,
            "dataset": dataset,
            "data": data,
            "split": split,
            "preprocessing": {
                k: preprocessing.get(k)
                for k in PREPROCESSING_KEYS
                if k in preprocessing
            },
        }
    )


def reported(source, evaluation, dataset, split):
    """Returns the fingerprint of a row reported in a paper."""
    return digest(
        {"paper": source, "evaluation": evaluation, "dataset": dataset, "split": split}
    )


def of_row(row):
    """Returns a row's fingerprint: its own, else one computed from it."""
    if row.get("fingerprint"):
        return row["fingerprint"]
    if row.get("source", "").startswith("paper:"):
        return reported(row["source"], row["evaluation"], row["dataset"], row["split"])
    try:
        protocol = json.loads(row.get("protocol") or "{}")
    except json.JSONDecodeError:
        protocol = {}
    for key in ("config", "input"):
        protocol.pop(key, None)
    return digest(
        {
            "legacy": protocol,
            "evaluation": row.get("evaluation"),
            "dataset": row.get("dataset"),
            "split": row.get("split"),
        }
    )
