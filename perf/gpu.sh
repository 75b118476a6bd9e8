#!/usr/bin/env bash
# The GPU figures: ResNet-50 v1.5 at 224 px, full width, measured with this
# project's own code on whatever accelerator TensorFlow sees.
#   1. training images/s, mixed precision and XLA (the GPU defaults), through
#      the zoo's trainer and through keras Model.fit (perf/train_loop.py,
#      no holdout, first epoch excluded);
#   2. inference images/s of an exported module in the benchmark's extraction
#      loop (perf/extract.py: read, decode, preprocess, forward, check);
# each printed with the device name and batch size, then compared with
# published figures: NVIDIA's ResNet-50 v1.5 AMP training on one A100 (about
# 2,500 images/s) and timm's ResNet-50 inference on an RTX 3090 (about
# 3,000 images/s).
#
# Command (under 5 minutes on one GPU; the data are an Imagenette-style
# image folder ROOT/{train,val}/<class>/*):
#   bash perf/gpu.sh --imagenette=DIR
#   bash perf/gpu.sh --tiny            # CPU check: embedded digits, 32 px, x1/8
# Figures measured on a lent GPU are in docs/training.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
DATA="" TINY=0
for arg in "$@"; do
  case "$arg" in
    --imagenette=*) DATA=${arg#*=} ;;
    --tiny) TINY=1 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/gpu.sh: unknown argument '$arg'; use --imagenette=DIR or --tiny" >&2; exit 2 ;;
  esac
done
if [ "$TINY" = 0 ] && [ ! -d "$DATA/train" ]; then
  echo "perf/gpu.sh: no image folder DIR/train; pass --imagenette=DIR (or --tiny on CPU)" >&2
  exit 2
fi
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}
DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
[ -n "$DEVICE" ] || DEVICE="no GPU ($(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1 || echo CPU), $(nproc) cores)"
echo "device: $DEVICE"
if [ "$TINY" = 1 ]; then
  TRAIN=(--config=digits --image_size=32 --width_multiplier=0.125 --batch_size=32 --epochs=2)
  INFER=(--data=none --width=0.125 --image_size=32 --batch_size=32 --max_per_class=8 --repeats=1)
  TRAIN_BATCH=32 INFER_BATCH=32
else
  TRAIN_BATCH=${TRAIN_BATCH:-256} INFER_BATCH=${INFER_BATCH:-256}
  TRAIN=(--config=imagenette --dataset="$DATA" --image_size=224 --width_multiplier=1
         --max_per_class=900 --batch_size="$TRAIN_BATCH" --epochs=3)
  INFER=(--data="$DATA" --split=val --width=1 --image_size=224
         --batch_size="$INFER_BATCH" --max_per_class=200 --repeats=2)
fi
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
echo "== training: ResNet-50 v1.5, batch $TRAIN_BATCH (perf/train_loop.py) =="
"$PY" perf/train_loop.py "${TRAIN[@]}" --rounds=1 --modes=no_holdout | tee "$LOG"
OURS=$(sed -n 's/.*zoo custom loop : *\([0-9.]*\) images.*/\1/p' "$LOG")
FIT=$(sed -n 's/.*keras Model.fit : *\([0-9.]*\) images.*/\1/p' "$LOG")
echo "== inference: exported module in the extraction loop, batch $INFER_BATCH (perf/extract.py) =="
"$PY" perf/extract.py "${INFER[@]}" | tee "$LOG"
INFER_RATE=$(sed -n 's/.*harness \([0-9.]*\) img\/s$/\1/p' "$LOG")
echo "== summary on $DEVICE =="
awk -v ours="$OURS" -v fit="$FIT" -v inf="$INFER_RATE" -v tb="$TRAIN_BATCH" -v ib="$INFER_BATCH" 'BEGIN {
  printf "training, zoo trainer: %.1f images/s at batch %d = %.3f x NVIDIA A100 AMP (about 2,500)\n", ours, tb, ours / 2500
  printf "training, Model.fit:   %.1f images/s at batch %d = %.3f x NVIDIA A100 AMP (about 2,500)\n", fit, tb, fit / 2500
  printf "inference, extraction: %.1f images/s at batch %d = %.3f x timm on an RTX 3090 (about 3,000)\n", inf, ib, inf / 3000
}'
