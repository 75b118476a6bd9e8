"""The one names table of evaluations and summary columns: what the paper's
rows, measured rows, terminal views, the web site and the reproduction
report call each thing (evaluation names are the registry's, end to end:
`fine_tune`, never `finetune`)."""

# The paper's evaluation names -> this project's evaluator names, so reported
# and measured rows share evaluation, dataset, split and metric (paper_rows).
PAPER_EVALUATIONS = {
    "linear": "linear_probe",
    "knn": "knn",
    "finetune": "fine_tune",
    "imagenet": "imagenet_ood",
    "class_separation": "class_separation",
    "chexpert_official_val": "chexpert",
    "chexpert_iid_split": "chexpert",
}
# evaluation (as in rows and the EVALUATORS registry) -> title
EVALUATIONS = {
    "linear_probe": "Linear probe",
    "knn": "kNN",
    "few_shot": "Few-shot",
    "fine_tune": "Fine-tuning",
    "chexpert": "Chexpert",
    "class_separation": "Class separation",
    "imagenet_ood": "ImageNet & OOD",
    "holdout": "Holdout",
    "calibration": "Calibration",
}
# The transfer evaluations, each a summary column of its own name (the mean
# accuracy over transfer datasets).
TRANSFER = ("linear_probe", "knn", "fine_tune")
# summary column -> (short label, shown in percent)
SUMMARY = {
    "top1": ("top-1", True),
    "linear_probe": ("linear", True),
    "knn": ("kNN", True),
    "fine_tune": ("fine-tune", True),
    "r2": ("R²", False),
    "chexpert": ("Chexpert", True),
}
# zoo-leaderboard --rank_by takes evaluation names; the column each ranks by.
RANK_COLUMNS = {
    "holdout": "top1",
    "imagenet_ood": "top1",
    "linear_probe": "linear_probe",
    "knn": "knn",
    "fine_tune": "fine_tune",
    "class_separation": "r2",
    "chexpert": "chexpert",
}


def label(column):
    """Returns the short label of a summary column."""
    return SUMMARY[column][0]
