"""Chexpert: one L2 logistic regression per pathology on frozen features.

Protocol (Kornblith et al. 2021; docs/paper.md): for each of Atelectasis,
Cardiomegaly, Consolidation, Edema and Pleural Effusion, a binary logistic
regression on the module's frozen penultimate features, objective
sum_i BCE_i + (lambda / 2) ||w||^2, lambda chosen per pathology from
`num_l2` log-spaced values in [l2_min, l2_max] by the exact AUC on a
stratified validation split of the training rows (ties keep the larger
lambda), then refit on all training rows. Uncertain (-1) and blank labels are
negatives; frontal views only by default. The test AUC is reported both with
the paper's 1000 evenly spaced thresholds and exactly, with a seeded
percentile bootstrap 95% interval of the threshold AUC.

The fit is the linear probe's solver and sweep (`benchmark.stats.logistic`) on the
equivalent two-class softmax: its penalty on the two-row W is twice
this lambda (docs/protocols.md), so `l2` here is the single-vector lambda,
scikit-learn's C = 1 / l2. Features come from the harness's cached
extraction of the ChexpertDataset's "train" and "valid" splits.

Two settings: "valid" trains on the training CSV and tests on the official
validation CSV; "iid" holds out an i.i.d. (image-level) split of the
training rows, 22,431 images at full scale (CheXpert's 223,414 training rows),
i.e. round(iid_fraction * training rows) and at least `min_iid_size` on
smaller label files, and trains on the rest. The actual size is recorded as
the measurement's test_size.
"""

import numpy as np

from benchmark.data.chexpert import ChexpertDataset
from benchmark.evaluators.base import (
    EVALUATORS,
    Evaluator,
    Measurement,
    check_positive,
)
from benchmark.stats import logistic, metrics, roc

FULL_TRAIN_ROWS = 223_414
FULL_IID_SIZE = 22_431
SETTINGS = ("valid", "iid")


@EVALUATORS.register("chexpert")
class Chexpert(Evaluator):
    """Per-pathology linear classifiers on frozen features, two test settings.

    Args:
      data: a "chexpert:DIR" spec (the folder that holds the CSVs or
        CheXpert-v1.0-small/), or "chexpert:digits" (embedded stand-in).
      settings: which of "valid" (official validation CSV) and "iid" (split
        held out from train) to run.
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
      max_iter: L-BFGS iterations per fit.
      tol: L-BFGS tolerance on max |gradient| of the mean-loss objective.
    """

    name = "chexpert"

    def __init__(
        self,
        *,
        data=None,
        settings=SETTINGS,
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
        max_iter=1000,
        tol=1e-6,
    ):
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown or not settings:
            raise ValueError(
                f"unknown Chexpert setting(s) {', '.join(unknown) or 'none given'}; "
                f"choose from {', '.join(SETTINGS)}"
            )
        check_positive(
            num_l2=num_l2,
            num_thresholds=num_thresholds,
            bootstrap_samples=bootstrap_samples,
            max_iter=max_iter,
        )
        logistic.l2_grid(num_l2, l2_min, l2_max)  # Validates the grid.
        self.data = data
        self.settings = tuple(settings)
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
        self.max_iter = max_iter
        self.tol = tol

    def l2_grid(self):
        """Returns the candidate lambdas, largest first (the sweep order)."""
        return logistic.l2_grid(self.num_l2, self.l2_min, self.l2_max)

    def iid_size(self, num_csv_rows, num_usable):
        """Returns the i.i.d. test size for a training CSV of `num_csv_rows`
        rows of which `num_usable` are used: round(iid_fraction * rows), at
        least min_iid_size, at most half the usable rows."""
        size = max(self.min_iid_size, int(round(self.iid_fraction * num_csv_rows)))
        return min(size, num_usable // 2)

    def run(self, context):
        """Yields per-pathology AUC measurements for each setting."""
        data = context.dataset(self.data)
        if not isinstance(data, ChexpertDataset):
            raise ValueError(
                f"chexpert needs CheXpert-format data (chexpert:DIR), got {data.name}"
            )
        train = context.features(data, "train")
        x, y = train.features, data.targets(train.labels)
        if "valid" in self.settings:
            valid = context.features(data, "valid")
            yield from self._setting(
                context,
                data,
                "train->valid",
                (x, y),
                (valid.features, data.targets(valid.labels)),
            )
        if "iid" in self.settings:
            n_iid = self.iid_size(data.num_csv_rows("train"), len(x))
            rng = np.random.RandomState(self.iid_seed)
            held = np.zeros(len(x), dtype=bool)
            held[rng.choice(len(x), size=n_iid, replace=False)] = True
            yield from self._setting(
                context,
                data,
                "train->iid",
                (x[~held], y[~held]),
                (x[held], y[held]),
            )

    def _setting(self, context, data, split, train, test):
        """Yields the measurements of one (train, test) setting."""
        (x, y), (test_x, test_y) = train, test
        where = dict(
            dataset=data.name, split=split, train_size=len(x), test_size=len(test_x)
        )
        aucs = []
        for j, pathology in enumerate(data.pathologies):
            slug = pathology.lower().replace(" ", "_")
            fitted = self._fit_pathology(x, y[:, j])
            if fitted is None or len(np.unique(test_y[:, j])) < 2:
                context.report(
                    f"[chexpert] {split} {pathology}: skipped (a split lacks "
                    "positives or negatives)"
                )
                continue
            params, selected = fitted
            scores = logistic.positive_probability(params, test_x)
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
            context.report(
                f"[chexpert] {split} {pathology}: AUC {auc:.4f} [{low:.4f}, "
                f"{high:.4f}] l2 {selected['l2']:.3g}"
            )
            aucs.append(auc)
            for metric, value in values.items():
                yield Measurement(metric, float(value), selected=selected, **where)
        if aucs:
            yield Measurement("auc_mean", float(np.mean(aucs)), **where)

    def _fit_pathology(self, x, y):
        """Returns (params refit on all of x, selected), or None when there
        are fewer than 2 positives or negatives to split."""
        if min(np.sum(y), np.sum(1 - y)) < 2:
            return None
        tr, val = metrics.stratified_split(y, self.val_fraction, self.val_seed)
        params, chosen = logistic.select_and_refit(
            x,
            y,
            tr,
            val,
            2.0 * self.l2_grid(),  # The two-row penalty of the single-vector lambda.
            lambda params, vx, vy: roc.exact_auc(
                vy, logistic.positive_probability(params, vx)
            ),
            max_iter=self.max_iter,
            tol=self.tol,
        )
        selected = chosen._replace(
            value=chosen.value / 2.0, tied_range=[v / 2.0 for v in chosen.tied_range]
        ).selected("l2", "val_auc")
        return params, selected
