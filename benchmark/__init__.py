"""The benchmark: scores any image module and keeps the leaderboard.

Layout (one of each per job):
  configs/ + config.py   benchmark configs (what runs on which data) and
                         the --set override syntax
  harness.py             the one harness loop and the leaderboard rows
  context.py             what an evaluator is given (module, data, outputs)
  evaluators/            one evaluator per file, one registry (EVALUATORS)
  modules.py             the one module type: loading, contract, safety scan
  extract.py             the one cached extraction loop (features, logits)
  datasets.py            dataset specs: transfer sets, ImageNet sets,
                         CheXpert, and zoo.data's (digits, tfds:, folders)
  logistic.py, neighbours.py, metrics.py, roc.py
                         solvers and metrics the evaluators share
  leaderboard.py         the results CSV; main.py and leaderboard_main.py
                         are the thin zoo-benchmark / zoo-leaderboard CLIs
"""
