"""Chexpert: one L2 logistic regression per pathology on frozen features.

Protocol (Kornblith et al. 2021, REFERENCE.md): for each of Atelectasis,
Cardiomegaly, Consolidation, Edema and Pleural Effusion, a binary logistic
regression on the module's frozen penultimate features, objective
sum_i BCE_i + (lambda / 2) ||w||^2, lambda chosen per pathology from
`num_l2` log-spaced values in [l2_min, l2_max] by the exact AUC on a
stratified validation split of the training rows (ties keep the larger
lambda), then refit on all training rows. Uncertain (-1) and blank labels are
negatives; frontal views only by default. The test AUC is reported both with
the paper's 1000 evenly spaced thresholds and exactly, with a seeded
percentile bootstrap 95% interval of the threshold AUC.

Two settings: "valid" trains on the training CSV and tests on the official
validation CSV; "iid" holds out an i.i.d. (image-level) split of the
training rows, 22,431 images at full scale (CheXpert's 223,414 training rows),
i.e. round(iid_fraction * training rows) and at least `min_iid_size` on
smaller label files, and trains on the rest. The actual size is recorded as
the measurement's test_size.
"""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from benchmark import chexpert_data, metrics, roc
from benchmark.evaluators.module_base import (
    MODULE_EVALUATORS,
    ModuleEvaluator,
    ModuleMeasurement,
    SavedModule,
)
from benchmark.modules import LoadedModule, load_module

FULL_TRAIN_ROWS = 223_414
FULL_IID_SIZE = 22_431
SETTINGS = ("valid", "iid")


@MODULE_EVALUATORS.register("chexpert")
class Chexpert(ModuleEvaluator):
    """Per-pathology linear classifiers on frozen features, two test settings.

    Args:
      settings: which of "valid" (official validation CSV) and "iid" (split
        held out from train) to run.
      frontal_only: keep only rows whose "Frontal/Lateral" is "Frontal".
      num_l2: number of candidate regularisation strengths.
      l2_min: smallest lambda (on the sum of per-example losses).
      l2_max: largest lambda.
      val_fraction: fraction of each pathology's training rows (stratified)
        held out to choose lambda.
      val_seed: seed of that validation split.
      iid_fraction: held-out fraction of the training CSV's rows.
      min_iid_size: smallest i.i.d. test split (small label files).
      iid_seed: seed of the i.i.d. split.
      num_thresholds: thresholds of the paper's approximate AUC.
      bootstrap_samples: resamples of the bootstrap interval.
      bootstrap_seed: seed of the resampling.
      batch_size: images per feature-extraction batch.
      max_iter: L-BFGS iterations per fit.
    """

    name = "chexpert"

    def __init__(
        self,
        *,
        settings=SETTINGS,
        frontal_only=True,
        num_l2=23,
        l2_min=1e-6,
        l2_max=1e5,
        val_fraction=0.2,
        val_seed=0,
        iid_fraction=FULL_IID_SIZE / FULL_TRAIN_ROWS,
        min_iid_size=100,
        iid_seed=0,
        num_thresholds=1000,
        bootstrap_samples=1000,
        bootstrap_seed=0,
        batch_size=128,
        max_iter=1000,
    ):
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise ValueError(
                f"unknown Chexpert setting(s) {', '.join(unknown)}; choose from "
                f"{', '.join(SETTINGS)}"
            )
        self.settings = tuple(settings)
        self.frontal_only = frontal_only
        self.num_l2 = num_l2
        self.l2_min = l2_min
        self.l2_max = l2_max
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.iid_fraction = iid_fraction
        self.min_iid_size = min_iid_size
        self.iid_seed = iid_seed
        self.num_thresholds = num_thresholds
        self.bootstrap_samples = bootstrap_samples
        self.bootstrap_seed = bootstrap_seed
        self.batch_size = batch_size
        self.max_iter = max_iter

    def l2_grid(self):
        """Returns the candidate lambdas, largest first (the sweep order)."""
        grid = np.logspace(np.log10(self.l2_min), np.log10(self.l2_max), self.num_l2)
        return grid[::-1]

    def iid_size(self, num_csv_rows, num_usable):
        """Returns the i.i.d. test size for a training CSV of `num_csv_rows`
        rows of which `num_usable` are used: round(iid_fraction * rows), at
        least min_iid_size, at most half the usable rows."""
        size = max(self.min_iid_size, int(round(self.iid_fraction * num_csv_rows)))
        return min(size, num_usable // 2)

    def run(self, module, data, *, strategy=None, report=print):
        """Yields per-pathology AUC measurements for each setting.

        Args:
          module: a module handle, LoadedModule or SavedModule (its feature
            vector is used).
          data: a benchmark.chexpert_data.ChexpertData.
        """
        del strategy  # Nothing here trains the module.
        features = _feature_module(module)
        train = data.train()
        rows = train.rows(self.frontal_only)
        if not len(rows):
            raise chexpert_data.ChexpertError(f"{data.train_csv} has no frontal rows")
        files = chexpert_data.resolve_paths(data.root, train.paths[rows])
        x = chexpert_data.extract(
            features, files, batch_size=self.batch_size, report=report
        )
        y = train.binary()[rows]
        if "valid" in self.settings:
            valid = data.valid()
            valid_rows = valid.rows(self.frontal_only)
            valid_files = chexpert_data.resolve_paths(
                data.root, valid.paths[valid_rows]
            )
            valid_x = chexpert_data.extract(
                features, valid_files, batch_size=self.batch_size, report=report
            )
            yield from self._setting(
                data,
                "train->valid",
                (x, y),
                (valid_x, valid.binary()[valid_rows]),
                report,
            )
        if "iid" in self.settings:
            n_iid = self.iid_size(len(train), len(rows))
            rng = np.random.RandomState(self.iid_seed)
            held = np.zeros(len(rows), dtype=bool)
            held[rng.choice(len(rows), size=n_iid, replace=False)] = True
            yield from self._setting(
                data, "train->iid", (x[~held], y[~held]), (x[held], y[held]), report
            )

    def _setting(self, data, split, train, test, report):
        """Yields the measurements of one (train, test) setting."""
        (x, y), (test_x, test_y) = train, test
        aucs = []
        for j, pathology in enumerate(data.pathologies):
            slug = pathology.lower().replace(" ", "_")
            fitted = self._fit_pathology(x, y[:, j])
            if fitted is None or len(np.unique(test_y[:, j])) < 2:
                report(
                    f"[chexpert] {split} {pathology}: skipped (a split lacks "
                    "positives or negatives)"
                )
                continue
            model, selected = fitted
            scores = model.predict_proba(test_x)[:, 1]
            auc = roc.threshold_auc(test_y[:, j], scores, self.num_thresholds)
            low, high = roc.bootstrap_interval(
                test_y[:, j],
                scores,
                num_thresholds=self.num_thresholds,
                samples=self.bootstrap_samples,
                seed=self.bootstrap_seed,
            )
            values = {
                f"auc_{slug}": auc,
                f"auc_exact_{slug}": roc.exact_auc(test_y[:, j], scores),
                f"auc_{slug}_ci_low": low,
                f"auc_{slug}_ci_high": high,
            }
            report(
                f"[chexpert] {split} {pathology}: AUC {auc:.4f} [{low:.4f}, "
                f"{high:.4f}] l2 {selected['l2']:.3g}"
            )
            aucs.append(auc)
            for metric, value in values.items():
                yield self._measure(data, split, metric, value, selected, x, test_x)
        if aucs:
            yield self._measure(data, split, "auc_mean", np.mean(aucs), {}, x, test_x)

    def _measure(self, data, split, metric, value, selected, x, test_x):
        return ModuleMeasurement(
            metric=metric,
            value=float(value),
            selected=selected,
            dataset=data.name,
            split=split,
            train_size=len(x),
            test_size=len(test_x),
        )

    def _fit_pathology(self, x, y):
        """Returns (model refit on all of x, {"l2", "val_auc"}), or None when
        there are fewer than 2 positives or negatives to split."""
        if min(np.sum(y), np.sum(1 - y)) < 2:
            return None
        tr, val = metrics.stratified_split(y, self.val_fraction, self.val_seed)
        best_l2, best_auc = None, -np.inf
        model = None
        for l2 in self.l2_grid():
            model = _fit(x[tr], y[tr], l2, self.max_iter, warm=model)
            value = roc.exact_auc(y[val], model.predict_proba(x[val])[:, 1])
            if value > best_auc:
                best_l2, best_auc = float(l2), value
        return _fit(x, y, best_l2, self.max_iter), {
            "l2": best_l2,
            "val_auc": float(best_auc),
        }


def _fit(x, y, l2, max_iter, warm=None):
    """Returns a LogisticRegression minimising sum_i BCE_i + (l2 / 2) ||w||^2
    (scikit-learn's C = 1 / l2), warm-started from `warm`'s solution."""
    model = LogisticRegression(C=1.0 / l2, max_iter=max_iter, tol=1e-6)
    if warm is not None:
        model.set_params(warm_start=True)
        model.coef_, model.intercept_ = warm.coef_.copy(), warm.intercept_.copy()
    with warnings.catch_warnings():
        # The weakest penalties may stop at max_iter; selection still works.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def _feature_module(module):
    """Returns a LoadedModule (feature vector) for any accepted module form."""
    if isinstance(module, LoadedModule):
        return module
    if isinstance(module, SavedModule):
        return load_module(module.path, image_size=module.image_size)
    return load_module(module)
