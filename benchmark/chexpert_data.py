"""CheXpert label files and the images they point at.

The CheXpert CSV layout (CheXpert-v1.0-small/{train,valid}.csv): a "Path"
column relative to the folder that holds CheXpert-v1.0-small/ (so paths start
with "CheXpert-v1.0-small/..."), "Frontal/Lateral", and one column per
observation whose cells are 1.0 (positive), 0.0 (negative), -1.0 (uncertain)
or blank (not mentioned). The evaluation (REFERENCE.md) counts uncertain and
blank as negative and uses frontal views by default.

A root may be either the folder that holds CheXpert-v1.0-small/ (paths resolve
as they are) or a folder whose name is the paths' first component, i.e.
CheXpert-v1.0-small itself (that component is then dropped); other layouts
(e.g. "images/x.png" next to the CSV) resolve relative to the root as is.
"""

import csv
import dataclasses
import gzip
import os
import time

import numpy as np
import tensorflow as tf

from zoo.data.base import hash_parts, short_message

PATHOLOGIES = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)
PATH_COLUMN = "Path"
VIEW_COLUMN = "Frontal/Lateral"
# Cell text -> value; blank is NaN.
LABEL_VALUES = {"1.0": 1.0, "1": 1.0, "0.0": 0.0, "0": 0.0, "-1.0": -1.0, "-1": -1.0}
COUNT_KINDS = ("positive", "negative", "uncertain", "blank")


class ChexpertError(ValueError):
    """A CheXpert CSV or image that cannot be used; the message says why."""


@dataclasses.dataclass(frozen=True)
class ChexpertTable:
    """The rows of one CheXpert CSV.

    Attributes:
      csv_path: the file read.
      paths: [N] str, the "Path" cells as written.
      frontal: [N] bool, "Frontal/Lateral" == "Frontal" (all True without it).
      raw: [N, P] float64 cells of `pathologies`: 1, 0, -1, NaN for blank.
      pathologies: the label columns, in order.
    """

    csv_path: str
    paths: np.ndarray
    frontal: np.ndarray
    raw: np.ndarray
    pathologies: tuple

    def binary(self):
        """Returns [N, P] int64 labels: 1 for 1.0, else 0 (uncertain and blank
        count as negative)."""
        return (self.raw == 1.0).astype(np.int64)

    def rows(self, frontal_only=True):
        """Returns the row indices used: frontal rows when `frontal_only`."""
        return np.flatnonzero(self.frontal) if frontal_only else np.arange(len(self))

    def __len__(self):
        return len(self.paths)


def _open_text(path):
    """Returns a text file object; ".gz" files are decompressed."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", newline="")
    return open(path, newline="")


def read_chexpert_csv(csv_path, pathologies=PATHOLOGIES):
    """Returns the ChexpertTable of `csv_path` (plain or .gz).

    Raises ChexpertError for a missing file, missing columns or a cell that is
    not 1.0 / 0.0 / -1.0 / blank, naming the file and line.
    """
    if not os.path.isfile(csv_path):
        raise ChexpertError(f"CheXpert CSV {csv_path} not found")
    with _open_text(csv_path) as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        missing = [c for c in (PATH_COLUMN, *pathologies) if c not in header]
        if missing:
            raise ChexpertError(
                f"{csv_path} lacks the CheXpert column(s) {', '.join(missing)}; "
                f"expected a header with {PATH_COLUMN} and {', '.join(pathologies)}"
            )
        path_col = header.index(PATH_COLUMN)
        view_col = header.index(VIEW_COLUMN) if VIEW_COLUMN in header else None
        label_cols = [header.index(p) for p in pathologies]
        paths, frontal, raw = [], [], []
        for line, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != len(header):
                raise ChexpertError(
                    f"{csv_path}:{line} has {len(cells)} fields, the header "
                    f"{len(header)}"
                )
            paths.append(cells[path_col])
            frontal.append(view_col is None or cells[view_col] == "Frontal")
            raw.append([_label(cells[c], csv_path, line) for c in label_cols])
    if not paths:
        raise ChexpertError(f"{csv_path} has no rows")
    return ChexpertTable(
        csv_path=os.path.abspath(csv_path),
        paths=np.array(paths),
        frontal=np.array(frontal, dtype=bool),
        raw=np.array(raw, dtype=np.float64),
        pathologies=tuple(pathologies),
    )


def _label(cell, csv_path, line):
    """Returns the value of one label cell (NaN for blank)."""
    cell = cell.strip()
    if not cell:
        return np.nan
    if cell not in LABEL_VALUES:
        raise ChexpertError(
            f"{csv_path}:{line}: label {cell!r} is not 1.0, 0.0, -1.0 or blank"
        )
    return LABEL_VALUES[cell]


def label_counts(table):
    """Returns {pathology: {"positive", "negative", "uncertain", "blank"}}
    counts over every row of `table` (all views)."""
    counts = {}
    for j, pathology in enumerate(table.pathologies):
        column = table.raw[:, j]
        counts[pathology] = {
            "positive": int(np.sum(column == 1.0)),
            "negative": int(np.sum(column == 0.0)),
            "uncertain": int(np.sum(column == -1.0)),
            "blank": int(np.sum(np.isnan(column))),
        }
    return counts


def resolve_paths(root, paths):
    """Returns the absolute image files of the CSV `paths` under `root`.

    A path resolves as root/path; when that does not exist and its first
    component is the root folder's own name (root = CheXpert-v1.0-small/),
    as root/<path without it>. Raises ChexpertError naming the first missing
    image and how many are missing.
    """
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise ChexpertError(f"CheXpert root {root} is not a directory")
    name = os.path.basename(root)
    resolved, missing = [], []
    for path in paths:
        direct = os.path.join(root, path)
        head, _, rest = path.partition("/")
        if not os.path.isfile(direct) and head == name and rest:
            direct = os.path.join(root, rest)
        resolved.append(direct)
        if not os.path.isfile(direct):
            missing.append(path)
    if missing:
        raise ChexpertError(
            f"{len(missing)} of {len(paths)} images listed in the CSV are missing "
            f"under {root} (first: {missing[0]}); pass --chexpert_root=<the folder "
            "that holds CheXpert-v1.0-small/ or the images>"
        )
    return np.array(resolved)


@dataclasses.dataclass(frozen=True)
class ChexpertData:
    """The CheXpert training CSV, its official validation CSV and the root.

    Args:
      root: the folder the CSV paths are relative to (see module docstring).
      train_csv: the training label file.
      valid_csv: the official validation label file.
      pathologies: the evaluated observations.
    """

    root: str
    train_csv: str
    valid_csv: str
    pathologies: tuple = PATHOLOGIES

    @property
    def name(self):
        """Returns the leaderboard dataset name: "chexpert:<absolute root>"."""
        return f"chexpert:{os.path.abspath(self.root)}"

    def train(self):
        """Returns the ChexpertTable of the training CSV."""
        return read_chexpert_csv(self.train_csv, self.pathologies)

    def valid(self):
        """Returns the ChexpertTable of the validation CSV."""
        return read_chexpert_csv(self.valid_csv, self.pathologies)

    def fingerprint(self):
        """Returns a hash of the root and both CSVs' sizes and mtimes."""
        parts = [self.root]
        for path in (self.train_csv, self.valid_csv):
            stat = os.stat(path)
            parts.append(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}")
        return hash_parts(*parts)


def find_chexpert(root, train_csv=None, valid_csv=None):
    """Returns ChexpertData for `root`, finding the CSVs when not given.

    Without explicit CSVs, train.csv / valid.csv are looked for in `root` and
    then in root/CheXpert-v1.0-small/.
    """
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise ChexpertError(f"CheXpert root {root} is not a directory")
    found = {}
    for key, given, name in (
        ("train", train_csv, "train.csv"),
        ("valid", valid_csv, "valid.csv"),
    ):
        if given:
            found[key] = os.path.abspath(os.path.expanduser(given))
            continue
        for folder in (root, os.path.join(root, "CheXpert-v1.0-small")):
            if os.path.isfile(os.path.join(folder, name)):
                found[key] = os.path.join(folder, name)
                break
        else:
            raise ChexpertError(
                f"no {name} in {root} or {root}/CheXpert-v1.0-small; pass "
                f"--chexpert_{key}_csv"
            )
    return ChexpertData(root, found["train"], found["valid"])


def decode_image(path):
    """Returns the uint8 [H, W, 3] image of the file `path` (a string tensor);
    grayscale X-rays are replicated to three channels."""
    image = tf.io.decode_image(
        tf.io.read_file(path), channels=3, expand_animations=False
    )
    image.set_shape([None, None, 3])
    return image


def image_batches(files, size, batch_size=128, crop_fraction=1.0):
    """Returns a tf.data.Dataset of float32 [b, size, size, 3] image batches of
    `files`, in order (the linear-evaluation preprocessing by default)."""
    from zoo.data import eval_preprocess

    return (
        tf.data.Dataset.from_tensor_slices(np.asarray(files))
        .map(
            lambda f: eval_preprocess(decode_image(f), size, crop_fraction),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def extract(module, files, *, batch_size=128, crop_fraction=1.0, report=print):
    """Returns [N, d] float32 features of `module` (a LoadedModule) on `files`.

    An undecodable image raises ChexpertError naming the file.
    """
    chunks, last = [], time.perf_counter()
    batches = image_batches(files, module.image_size, batch_size, crop_fraction)
    try:
        for images in batches:
            chunks.append(np.asarray(module(images), dtype=np.float32))
            done = sum(map(len, chunks))
            if time.perf_counter() - last > 10 or done == len(files):
                last = time.perf_counter()
                report(f"[chexpert] features {done}/{len(files)}")
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        raise _decode_error(files, sum(map(len, chunks)), error) from None
    return np.concatenate(chunks)


def _decode_error(files, start, error):
    """Returns the ChexpertError naming the first undecodable file from `start`."""
    for path in files[start:]:
        try:
            decode_image(tf.constant(path))
        except tf.errors.OpError as file_error:
            return ChexpertError(
                f"cannot decode image {path}: {short_message(file_error)}; "
                "delete or replace the file"
            )
    return ChexpertError(f"cannot read the CheXpert images: {short_message(error)}")
