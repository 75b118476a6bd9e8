#!/usr/bin/env bash
# A Slurm job array running one shard of a benchmark plan per task.
# Edit the #SBATCH lines and the plan below, then:  sbatch launchers/slurm_benchmark.sh
# Every task runs the same zoo-benchmark command with --shard=$SLURM_ARRAY_TASK_ID/N;
# finished jobs are skipped, so resubmitting the array redoes only what failed.
# Afterwards:  zoo-leaderboard merge runs/plan/*/ --leaderboard=runs/leaderboard.csv
#SBATCH --job-name=zoo-benchmark
#SBATCH --array=0-7            # N = 8 shards: indices 0..N-1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=12:00:00
#SBATCH --output=runs/slurm/%x-%A_%a.out
set -euo pipefail
SHARDS=${SHARDS:-8}           # keep equal to the --array size
MODULES=${MODULES:-authors_resnet50_softmax_seed0,authors_resnet50_sigmoid_seed0}
exec zoo-benchmark --config=paper --modules="$MODULES" \
    --data_dir="${TFDS_DATA_DIR:-$HOME/tensorflow_datasets}" \
    --bundle_root=runs/plan --shard="${SLURM_ARRAY_TASK_ID}/${SHARDS}"
