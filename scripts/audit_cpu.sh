#!/usr/bin/env bash
# "Where do the gains come from?": every arm of the audit on the CPU, resumable, one job per core.
#   OMP_NUM_THREADS=1 nohup scripts/audit_cpu.sh > runs/audit.log 2>&1 &
# Rerunning skips every arm whose record is stored in results/audit; a base whose checkpoint is gone
# (checkpoints stay out of git, in runs/audit) is retrained and must reproduce its stored record.
# The plan (recipes, bases, the post-hoc sub-grid) is dirlib.paper.audit.PLANS; it ends by regenerating
# the decomposition tables (results/tables/audit). JOBS=2 runs two (dataset, base) queues at once.
#   DATASETS   default "sts-b-dir utkface-dir"
#   SEEDS      default "0 1 2 3 4"
#   FULL_GRID  set to 1 for the published 40 x {1,3,...,19} grid instead of the CPU sub-grid
set -euo pipefail
cd "$(dirname "$0")/.."
export DIRLIB_DATA="${DIRLIB_DATA:-$(cd .. && pwd)/shared/data}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PY=${PY:-.venv/bin/python}
DATASETS="${DATASETS:-sts-b-dir utkface-dir}"
SEEDS="${SEEDS:-0 1 2 3 4}"
JOBS="${JOBS:-2}"
extra=()
[ "${FULL_GRID:-0}" = 1 ] && extra+=(--full-grid)
mkdir -p runs
queues=()
for ds in $DATASETS; do
  for base in $($PY -c "from dirlib.paper.audit import PLANS; print(*PLANS['$ds']['bases'])"); do
    queues+=("$ds $base")
  done
done
printf '%s\n' "${queues[@]}" | xargs -P "$JOBS" -L 1 sh -c \
  "$PY -m dirlib audit run --dataset \"\$0\" --bases \"\$1\" --seeds $SEEDS ${extra[*]:-} \
   > runs/audit-\$0-\$1.log 2>&1 || echo \"queue \$0 \$1 failed: see runs/audit-\$0-\$1.log\""
$PY -m dirlib audit tables
