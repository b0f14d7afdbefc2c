#!/usr/bin/env bash
# CPU-scale reproduction (issue #7: STS-B-DIR and UTKFace-DIR tables, 3 seeds), resumable.
# Run it in the background; the same command after an interruption skips finished runs and
# resumes unfinished ones from their last epoch checkpoint. Commit results/runs as runs finish.
#   OMP_NUM_THREADS=1 nohup scripts/reproduce_cpu.sh > runs/reproduce.log 2>&1 &
# Settings (see docs/reproduction.md for the measured costs behind them):
#   STS-B-DIR:   BiLSTM hidden 128 per direction, GloVe 6B-50d, batch 128, Adam 1e-3, wd 1e-5,
#                grad clip 5, 10 epochs                                  (DATASETS=sts-b-dir, default)
#   UTKFace-DIR: ResNet-18 (ImageNet stem), 32 px, batch 64, Adam 1e-3, 20 epochs, lr x0.1 at 14, 18
#                (DATASETS="sts-b-dir utkface-dir"; the committed UTKFace-DIR table is the 64 px
#                GPU run of python -m dirlib sweep --backend ray instead, docs/reproduction.md)
set -euo pipefail
cd "$(dirname "$0")/.."
export DIRLIB_DATA="${DIRLIB_DATA:-$(cd .. && pwd)/shared/data}"
PY=${PY:-.venv/bin/python}
METHODS="vanilla inv lds fds lds+fds focal rrt bmc ranksim oe conr frobenius lds+frobenius ranksim+frobenius"
SEEDS="${SEEDS:-0 1 2}"
DATASETS="${DATASETS:-sts-b-dir}"
for seed in $SEEDS; do
  for ds in $DATASETS; do
    case $ds in
      sts-b-dir) args=(epochs=10 'model_kwargs={"hidden":128}') ;;
      utkface-dir) args=(img_size=32 epochs=20 'lr_milestones=[14,18]') ;;
      *) echo "unknown dataset $ds" >&2; exit 2 ;;
    esac
    $PY -m dirlib sweep --dataset "$ds" --methods $METHODS --seeds "$seed" --out results/runs \
        --delete-ckpt --train-arg "${args[@]}"
  done
done
$PY -m dirlib results tables --allow-dirty --results results/ --out results/tables/
$PY -m dirlib results readme --allow-dirty
