#!/bin/bash
# The measurements of docs/training.md, "The accurate model cpnx-painn and the committee
# cpnx-committee" (issue 14), on the shipped files; data/ as rebuilt by the commands there.
# Usage: scripts/issue14_measurements.sh STAGE   (eval, mdframes, mdeval, calib, stab300,
# stab500, stab20ps, mdstep); outputs go to runs/final/.
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
M=pymotor/models
MODELS="cpnx-schnet $M/cpnx-painn.pt $M/cpnx-committee/member-1.pt $M/cpnx-committee/member-2.pt"
PAINNS="$M/cpnx-painn.pt $M/cpnx-committee/member-1.pt $M/cpnx-committee/member-2.pt"
MDFRAMES="runs/final/mdframes-500K/labels.db runs/final/mdframes-600K/labels.db runs/final/mdframes-700K/labels.db"
OUT=runs/final
mkdir -p $OUT
case "$1" in
  eval)  # errors on common frames; held-out trajectories per conformer
    pymotor evaluate $MODELS --data data/T300/T300_1.db data/T300/T300_2.db --split test --stride 10 --json > $OUT/eval_T300test.json
    pymotor evaluate $MODELS --data data/IND300/IND300_1.db --split all --stride 10 --by-conformer --json > $OUT/eval_IND300.json
    pymotor evaluate $MODELS --data data/RMSP300/RMSP300_2.db --split all --stride 10 --by-conformer --json > $OUT/eval_RMSP300_2.json
    pymotor evaluate $MODELS --data data/T500/T500_2.db --split all --stride 10 --json > $OUT/eval_T500_2.json
    pymotor evaluate $MODELS --data data/RMSP500/RMSP500_1.db --split test --stride 10 --by-conformer --json > $OUT/eval_RMSP500test.json
    python scripts/model_comparison_table.py "T300 test=$OUT/eval_T300test.json" "IND300=$OUT/eval_IND300.json" \
      "RMSP300_2=$OUT/eval_RMSP300_2.json" "T500_2=$OUT/eval_T500_2.json" ;;
  mdframes)  # the committee's own NVT MD at 500-700 K, every checked frame labelled by GFN2-xTB
    for T in 500 600 700; do
      pymotor learn --committee cpnx-committee --out $OUT/mdframes-${T}K --temperature $T --steps 4000 \
        --replicas 4 --seed 1 --threshold 0 --check-every 100 --no-retrain --no-progress
    done ;;
  mdeval)
    pymotor evaluate $MODELS --data $MDFRAMES --split all --json > $OUT/eval_mdframes.json ;;
  calib)
    pymotor committee-calibration --committee cpnx-committee --data data/T300/T300_1.db data/T300/T300_2.db \
      --split test --stride 10 --plot docs/figures/committee_calibration_test.png --json $OUT/calib_test.json
    pymotor committee-calibration --committee cpnx-committee --data data/IND300/IND300_1.db data/RMSP300/RMSP300_2.db \
      data/T500/T500_2.db --split all --stride 10 --plot docs/figures/committee_calibration_heldout.png --json $OUT/calib_heldout.json
    pymotor committee-calibration --committee cpnx-committee --data $MDFRAMES --split all \
      --plot docs/figures/committee_calibration_md.png --json $OUT/calib_md.json ;;
  stab300) pymotor stability $PAINNS --runs 12 --temperature 300 --workers 1 | tee $OUT/stab300.md ;;
  stab500) pymotor stability $PAINNS --runs 12 --temperature 500 --workers 1 | tee $OUT/stab500.md ;;
  stab20ps) pymotor stability $M/cpnx-painn.pt --runs 24 --time-fs 20000 --workers 1 --out $OUT/stab20ps | tee $OUT/stab20ps.md ;;
  mdstep) python scripts/md_step_ms.py cpnx-schnet:fast cpnx-painn:fast cpnx-schnet:torchscript \
      cpnx-painn:torchscript --steps 200 --rounds 3 ;;
  *) echo "usage: $0 eval|mdframes|mdeval|calib|stab300|stab500|stab20ps|mdstep" >&2; exit 2 ;;
esac
