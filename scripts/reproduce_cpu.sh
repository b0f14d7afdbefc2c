#!/usr/bin/env bash
# CPU-scale reproduction (issue: STS-B-DIR and UTKFace-DIR tables, 3 seeds), resumable.
# Run it in the background; the same command after an interruption skips finished runs and
# resumes unfinished ones from their last epoch checkpoint. Commit results/runs as runs finish.
#   nohup scripts/reproduce_cpu.sh > runs/reproduce.log 2>&1 &
# Settings (see docs/reproduction.md for the measured costs behind them):
#   UTKFace-DIR: ResNet-18 (ImageNet stem), 32 px, batch 64, Adam 1e-3, 20 epochs, lr x0.1 at 14, 18
#   STS-B-DIR:   BiLSTM hidden 128 per direction, GloVe 6B-50d, batch 128, Adam 1e-3, wd 1e-5,
#                grad clip 5, 10 epochs
set -euo pipefail
cd "$(dirname "$0")/.."
export DIRLIB_DATA="${DIRLIB_DATA:-$(cd .. && pwd)/shared/data}"
PY=${PY:-.venv/bin/python}
METHODS="vanilla inv lds fds lds+fds focal rrt bmc ranksim oe conr frobenius lds+frobenius ranksim+frobenius"
SEEDS="${SEEDS:-0 1 2}"
for seed in $SEEDS; do
  $PY -m dirlib.sweep --dataset utkface-dir --methods $METHODS --seeds $seed --out results/runs \
      --delete-ckpt --train-arg img_size=32 epochs=20 'lr_milestones=[14,18]'
  $PY -m dirlib.sweep --dataset sts-b-dir --methods $METHODS --seeds $seed --out results/runs \
      --delete-ckpt --train-arg epochs=10 'model_kwargs={"hidden":128}'
done
$PY -m dirlib.results tables --results results/ --out results/tables/
