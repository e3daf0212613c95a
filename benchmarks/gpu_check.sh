#!/usr/bin/env bash
# One prepared pass over the CUDA path, for a machine with one NVIDIA GPU and no network.
#
# What it does, each step under its own timeout so one failure does not hide the others:
#   1. installs advx (no deps: the image's torch/transformers are used; missing pure-Python
#      packages come as wheels in .whl/) and prints versions;
#   2. benchmarks/mc_rollout.py --device cuda   (batched MC rollout vs the two loops)
#   3. benchmarks/ppo_step.py device=cuda       (one PPO iteration, phase by phase)
#   3b. benchmarks/precision_memory.py --device cuda (t5-base shape: fp32 vs bf16 step time
#      and peak memory, LoRA vs full fine-tuning; docs/scaling.md)
#   4. the three lines of work end to end with device=cuda, at smoke size:
#      ppo_cls_loss (as committed), seqgan_oracle (the paper's schedule, 2 adversarial
#      batches: times one paper-sized round), adagrpo_beauty (1 round of 10 GRPO steps)
# Everything lands in $OUT (default ./gpu_out): log.txt, the two benchmark JSONs and
# summaries.json (each run's summary.json plus its wall time).
#
#   OUT=/tmp/gpu_out bash benchmarks/gpu_check.sh
# Expects ../shared/data (or .devdata/, copied there) for the SeqGAN oracle and Beauty data.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec > >(tee "$OUT/log.txt") 2>&1

if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
if [ ! -d ../shared/data ] && [ -d .devdata ]; then mkdir -p ../shared && cp -r .devdata ../shared/data; fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . \
  || python3 -m pip install -q --no-index --no-deps --no-build-isolation .
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)"
python3 -m advx plugins || echo "FAILED: advx plugins"

step() {  # step NAME SECONDS CMD...: run CMD under a timeout, record its wall time
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@"; local rc=$?
  echo "=== $name: rc=$rc wall=$((SECONDS - t0))s"
  echo "{\"step\": \"$name\", \"rc\": $rc, \"wall_s\": $((SECONDS - t0))}" >> /tmp/steps.jsonl
}
rm -f /tmp/steps.jsonl

step mc_rollout 150 python3 benchmarks/mc_rollout.py --device cuda --out "$OUT/mc_rollout_cuda.json"
step ppo_step 120 python3 benchmarks/ppo_step.py device=cuda --out "$OUT/ppo_step_cuda.json"
step precision_memory 240 python3 benchmarks/precision_memory.py --device cuda \
  --out "$OUT/precision_memory_cuda.json"
step ppo_cls_loss 150 python3 -m advx run -q recipes/ppo_cls_loss.yaml device=cuda --run-dir /tmp/runs/ppo_cls_loss
step seqgan_oracle_paper_round 150 python3 -m advx run -q recipes/seqgan_oracle.yaml device=cuda \
  generator.epochs=2 loop.pretrain_d_steps=1 loop.rounds=2 loop.eval_every=2 \
  --run-dir /tmp/runs/seqgan_oracle
step adagrpo_beauty 120 python3 -m advx run -q recipes/adagrpo_beauty.yaml device=cuda \
  loop.rounds=1 loop.rl_steps=10 --run-dir /tmp/runs/adagrpo_beauty

python3 - "$OUT/summaries.json" <<'EOF'
import json, pathlib, sys
steps = [json.loads(line) for line in open("/tmp/steps.jsonl")]
runs = {}
for run in sorted(pathlib.Path("/tmp/runs").glob("*")):
    entry = {}
    summary = run / "summary.json"
    if summary.exists():
        entry["summary"] = json.loads(summary.read_text())
    metrics = run / "metrics.jsonl"
    if metrics.exists():
        entry["metrics"] = [json.loads(line) for line in metrics.read_text().splitlines()]
    runs[run.name] = entry
pathlib.Path(sys.argv[1]).write_text(json.dumps({"steps": steps, "runs": runs}, indent=1))
print(json.dumps(steps, indent=1))
EOF
