#!/usr/bin/env bash
# recipes/seqgan_oracle_cpu.yaml in one piece (MLE 15 epochs -> 10 d-steps -> 30 adversarial
# batches), 3 seeds, each beside the MLE baseline with the same pre-training plus one epoch
# (16 epochs, same evaluation sizes). One torch thread per run, runs one after another.
# Report: .venv/bin/python experiments/seqgan_oracle_cpu_report.py
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/cpu_oneshot}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1
for s in ${SEEDS:-0 1 2}; do
  /usr/bin/time -v .venv/bin/advx run -q recipes/seqgan_oracle_cpu.yaml seed=$s \
    --run-dir "$OUT/seqgan_seed$s" > "$OUT/seqgan_seed$s.log" 2>&1
  /usr/bin/time -v .venv/bin/advx run -q recipes/mle_oracle.yaml seed=$s generator.epochs=16 \
    task.num_test=2000 task.num_eval_samples=1000 \
    --run-dir "$OUT/mle16_seed$s" > "$OUT/mle16_seed$s.log" 2>&1
done
