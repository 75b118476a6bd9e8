"""CheXpert label files and the images they point at.

The CheXpert CSV layout (CheXpert-v1.0-small/{train,valid}.csv): a "Path"
column relative to the folder that holds CheXpert-v1.0-small/ (so paths start
with "CheXpert-v1.0-small/..."), "Frontal/Lateral", and one column per
observation whose cells are 1.0 (positive), 0.0 (negative), -1.0 (uncertain)
or blank (not mentioned). The evaluation (docs/paper.md) counts uncertain and
blank as negative and uses frontal views by default.

`ChexpertDataset` presents the two CSVs as an ImageDataset with splits
"train" and "valid", so the harness's one cached extraction loop serves
Chexpert like any other frozen-feature protocol: its label is the bitmask of
the positive pathologies (bit j for `pathologies[j]`), decoded by `targets`;
ids are the CSV paths. The spec "chexpert:digits" is an embedded stand-in in
the same format (written once to a temporary folder from scikit-learn's
digits) for smoke runs.

A root may be either the folder that holds CheXpert-v1.0-small/ (paths resolve
as they are) or a folder whose name is the paths' first component, i.e.
CheXpert-v1.0-small itself (that component is then dropped); other layouts
(e.g. "images/x.png" next to the CSV) resolve relative to the root as is.
"""

import csv
import dataclasses
import gzip
import os

import numpy as np
import tensorflow as tf

from zoo.data.base import (
    DatasetError,
    ImageDataset,
    decode_image_file,
    file_digest,
    hash_parts,
    select_first_per_class,
    short_message,
    undecodable_file_error,
)
from zoo.files import publish_folder

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
# Folders the CheXpert release unpacks to.
REAL_FOLDERS = ("CheXpert-v1.0-small", "CheXpert-v1.0")


class ChexpertError(DatasetError):
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
            f"under {root} (first: {missing[0]}); pass chexpert:DIR naming the folder "
            "that holds CheXpert-v1.0-small/ or the images"
        )
    return np.array(resolved)


class ChexpertDataset(ImageDataset):
    """CheXpert label files and their images as an ImageDataset.

    Args:
      root: the folder the CSV paths are relative to (see module docstring).
      train_csv: the training label file.
      valid_csv: the official validation label file.
      frontal_only: keep only rows whose "Frontal/Lateral" is "Frontal".
      pathologies: the evaluated observations.
      name: the leaderboard dataset name (default "chexpert:<absolute root>").
    """

    splits = ("train", "valid")
    train_split = "train"

    def __init__(
        self,
        root,
        train_csv,
        valid_csv,
        frontal_only=True,
        pathologies=PATHOLOGIES,
        name=None,
    ):
        self.root = os.path.abspath(os.path.expanduser(root))
        self.train_csv = train_csv
        self.valid_csv = valid_csv
        self.frontal_only = frontal_only
        self.pathologies = tuple(pathologies)
        self.name = name or f"chexpert:{self.root}"
        self.class_names = [str(mask) for mask in range(2 ** len(self.pathologies))]
        self._tables = {}

    @property
    def test_split(self):
        """Returns "valid", the official validation CSV."""
        return "valid"

    def source_paths(self):
        """Returns the image root and the two label files."""
        return (self.root, self.train_csv, self.valid_csv)

    def table(self, split):
        """Returns the ChexpertTable of `split`'s CSV (read once)."""
        self._check_split(split)
        if split not in self._tables:
            csv_path = self.train_csv if split == "train" else self.valid_csv
            self._tables[split] = read_chexpert_csv(csv_path, self.pathologies)
        return self._tables[split]

    def num_csv_rows(self, split):
        """Returns the number of rows of `split`'s CSV, all views."""
        return len(self.table(split))

    def _rows(self, split):
        """Returns the CSV rows used: frontal views when `frontal_only`."""
        table = self.table(split)
        rows = table.rows(self.frontal_only)
        if not len(rows):
            raise ChexpertError(f"{table.csv_path} has no frontal rows")
        return rows

    def _all_labels(self, split):
        binary = self.table(split).binary()[self._rows(split)]
        return binary @ (1 << np.arange(len(self.pathologies), dtype=np.int64))

    def targets(self, labels):
        """Returns the [N, P] int64 binary labels of bitmask labels."""
        bits = 1 << np.arange(len(self.pathologies), dtype=np.int64)
        return (np.asarray(labels, dtype=np.int64)[:, None] & bits > 0).astype(np.int64)

    def files(self, split, max_per_class=None):
        """Returns the image files of `split` in `as_dataset` order."""
        selected = self._selection(split, max_per_class)
        return resolve_paths(self.root, self.table(split).paths[selected])

    def _selection(self, split, max_per_class):
        rows = self._rows(split)
        return rows[select_first_per_class(self._all_labels(split), max_per_class)]

    def as_dataset(self, split, *, max_per_class=None):
        selected = self._selection(split, max_per_class)
        table = self.table(split)
        files = resolve_paths(self.root, table.paths[selected])
        labels = self.labels(split, max_per_class=max_per_class)
        return tf.data.Dataset.from_tensor_slices(
            {"file": files, "label": labels, "id": table.paths[selected]}
        ).map(
            lambda e: {
                "image": decode_image_file(e["file"]),
                "label": e["label"],
                "id": e["id"],
            },
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )

    def _read_error(self, split, max_per_class, position, error):
        """Returns the error naming the first undecodable file."""
        named = undecodable_file_error(self.files(split, max_per_class)[position:])
        return named or ChexpertError(
            f"cannot read the CheXpert images: {short_message(error)}"
        )

    def fingerprint(self):
        """Returns a hash of the root, both CSVs' contents, the view filter
        and the pathologies."""
        parts = [self.root, self.frontal_only, self.pathologies]
        for path in (self.train_csv, self.valid_csv):
            parts.append(f"{path}\t{file_digest(path)}")
        return hash_parts(*parts)


def find_chexpert(root, train_csv=None, valid_csv=None, frontal_only=True):
    """Returns the ChexpertDataset of `root`, finding the CSVs when not given.

    Without explicit CSVs, train.csv / valid.csv are looked for in `root` and
    then in root/CheXpert-v1.0-small/.
    """
    root = os.path.abspath(os.path.expanduser(root))
    if not os.path.isdir(root):
        raise ChexpertError(
            f"CheXpert root {root} is not a directory; pass chexpert:DIR naming "
            "the folder that holds CheXpert-v1.0-small/ (or the CSVs)"
        )
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
                f"no {name} in {root} or {root}/CheXpert-v1.0-small; pass the "
                "folder that holds the CheXpert CSVs"
            )
    # The real CheXpert is recorded as "chexpert", so measured rows meet the
    # paper's; any other folder in its format under its path.
    real = os.path.basename(os.path.dirname(found["train"])) in REAL_FOLDERS
    return ChexpertDataset(
        root,
        found["train"],
        found["valid"],
        frontal_only,
        name="chexpert" if real else None,
    )


def load_chexpert(location):
    """Returns the ChexpertDataset of a "chexpert:" spec's location: a folder,
    or "digits" for the embedded stand-in."""
    if location == EMBEDDED:
        dataset = find_chexpert(embedded_chexpert_root())
        dataset.name = f"chexpert:{EMBEDDED}"
        return dataset
    return find_chexpert(location)


EMBEDDED = "digits"


def embedded_chexpert_root():
    """Returns a folder holding the embedded CheXpert-format stand-in.

    scikit-learn's digits 0-4 as 8x8 PNG "X-rays" with train.csv / valid.csv
    (digits' train / test split): pathology j is positive for digit j and, for
    digit (j + 1) mod 5, uncertain on even rows (counted negative, as in the
    protocol) and blank otherwise. Written once per content hash to a folder
    under the system temporary directory, atomically (rename of a complete
    folder), so concurrent runs agree.
    """
    import tempfile

    from zoo.data import load_dataset

    dataset = load_dataset("digits_0to4")
    key = hash_parts("chexpert-digits-v1", dataset.fingerprint())
    root = os.path.join(tempfile.gettempdir(), f"loss-transfer-zoo-chexpert-{key}")
    if os.path.isfile(os.path.join(root, "valid.csv")):
        return root
    staging = tempfile.mkdtemp(
        prefix=os.path.basename(root) + ".", dir=os.path.dirname(root)
    )
    os.makedirs(os.path.join(staging, "images"))
    for split, csv_name in (
        (dataset.train_split, "train.csv"),
        (dataset.test_split, "valid.csv"),
    ):
        with open(os.path.join(staging, csv_name), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([PATH_COLUMN, VIEW_COLUMN, *PATHOLOGIES])
            for i, example in enumerate(dataset.as_numpy_iterator(split)):
                path = f"images/{split}_{i:04d}.png"
                png = tf.io.encode_png(example["image"]).numpy()
                with open(os.path.join(staging, path), "wb") as image_file:
                    image_file.write(png)
                cells = []
                for j in range(len(PATHOLOGIES)):
                    if example["label"] == j:
                        cells.append("1.0")
                    elif example["label"] == (j + 1) % len(PATHOLOGIES):
                        cells.append("-1.0" if i % 2 == 0 else "")
                    else:
                        cells.append("0.0")
                writer.writerow([path, "Frontal", *cells])
    publish_folder(staging, root)  # another process may have finished first
    return root
