#!/bin/bash
# The CPNX measurement of on-the-fly learning (issue 17; docs/learning.md, BENCHMARKS.md):
# a committee trained on 300 K data only learns on the fly at 600 K.
# Usage: scripts/issue17_measurements.sh STAGE   (committee, learn600, learn600-lr1e-4, learn600-lr3e-5, xtbmd, table)
# Every stage resumes when repeated; data/ as rebuilt by docs/training.md ("Rebuilding").
set -e
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1
[ -f .venv/bin/activate ] && source .venv/bin/activate
learn() {  # $1 = temperature (K), $2 = folder suffix, then extra options
  T=$1; SUFFIX=$2; shift 2
  pymotor learn --committee runs/committee-300K --out runs/learn-${T}K${SUFFIX} \
    --temperature $T --timestep-fs 0.5 --steps 10000 --replicas 2 --seed 0 \
    --check-every 20 --retrain-every 60 --segment-steps 400 \
    --replay data/T300/T300_1.db data/T300/T300_2.db --replay-frames 300 --retrain-epochs 2 \
    --test-db data/T500/T500_1.db data/T500/T500_2.db --test-split test --test-stride 20 \
    --train-threads 1 --no-progress "$@"
}
case "$1" in
  committee)  # the starting committee: the T300-only PaiNN (runs/cpnx-painn, stage 1 of
              # docs/training.md) and two 3-epoch fine-tunes of it with seeds 1 and 2
    mkdir -p runs/committee-300K
    [ -f runs/committee-300K/member-0.pt ] || pymotor export runs/cpnx-painn --out runs/committee-300K/member-0.pt --eval-stride 10
    pymotor train-committee data/T300/T300_1.db data/T300/T300_2.db --model painn --prior zbl \
      --energy-unit kcal/mol --stride 10,10 --seeds 1,2 --threads 1 --init-from runs/cpnx-painn \
      --hp lr=3e-4 --epochs 3 --out runs/committee-300K --compile on --workers 1 --eval-stride 10 --no-progress ;;
  learn600) learn 600 "" --retrain-lr 3e-4 ;;                 # fine-tuning at lr 3e-4, 2 epochs
  # runs/learn-600K-fixedthr was made before every round's threshold was recalibrated (commit
  # aa34997): the learn600 command with --steps 20000 --retrain-every 100 --replay-frames 400,
  # stopped in round 2 once its round 1 had labelled every check
  learn600-lr1e-4) learn 600 -lr1e-4 --retrain-lr 1e-4 --retrain-epochs 3 --steps 16000 ;;  # first run to 10000 steps, then extended
  learn600-lr3e-5) learn 600 -lr3e-5 --retrain-lr 3e-5 --retrain-epochs 3 ;;
  xtbmd)  # GFN2-xTB MD of CPNX at 600 K (tblite, wavefunction reused): its time per step
    pymotor md --xyz pymotor/data/cpnx.xyz --temperature 600 --steps 400 --interval 10 --out runs/xtbmd-600K
    cat runs/xtbmd-600K/timings.json ;;
  table)
    python scripts/learn_summary.py runs/learn-600K-lr1e-4 runs/learn-600K-lr3e-5 runs/learn-600K runs/learn-600K-fixedthr \
      --xtb-md-timings runs/xtbmd-600K/timings.json --offset-free ;;
  *) echo "usage: $0 committee|learn600|learn600-lr1e-4|learn600-lr3e-5|xtbmd|table" >&2; exit 2 ;;
esac
