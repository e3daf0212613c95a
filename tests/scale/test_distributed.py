"""Data-parallel runs on CPU (gloo): real launchers, real processes (advx.distributed)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKER = Path(__file__).with_name("dp_grad_worker.py")
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "core"), str(ROOT / "plugins")])
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("ADVX_LOAD_PLUGINS", None)
    return env


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1)]


def _check_worker(out: Path) -> None:
    first, second = _ranks(out)
    assert first["world_size"] == second["world_size"] == 2
    # the all-reduced gradient of the two halves equals the whole rollout's, on both ranks
    assert first["grad_diff"] < 1e-5 and second["grad_diff"] < 1e-5
    assert first["params"] == second["params"]  # identical weights after the update
    assert first["metrics"] == second["metrics"] == {"x": 0.5, "only": 1.0}
    assert first["any_rank"] is second["any_rank"] is True  # rank 1's flag reaches rank 0


def test_all_reduced_gradient_equals_the_whole_rollouts(tmp_path: Path) -> None:
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_port()),
           str(WORKER), str(tmp_path)]
    subprocess.run(cmd, env=_env(), check=True, timeout=300, capture_output=True)
    _check_worker(tmp_path)


def test_two_nodes_on_loopback(tmp_path: Path) -> None:
    port = str(_port())
    nodes = [
        subprocess.Popen(
            [str(BIN / "torchrun"), "--nnodes", "2", "--node_rank", str(k),
             "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", port,
             str(WORKER), str(tmp_path)],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for k in (0, 1)
    ]
    for node in nodes:
        out, _ = node.communicate(timeout=300)
        assert node.returncode == 0, out.decode()[-2000:]
    _check_worker(tmp_path)


def _corpus(folder: Path) -> Path:
    rng = random.Random(0)
    words = ["the", "a", "cat", "dog", "sat", "on", "mat", "ran", "far", "big", "small", "red"]
    for name, n in (("train.txt", 200), ("test.txt", 40)):
        lines = (" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(n))
        (folder / name).write_text("\n".join(lines) + "\n")
    recipe = f"""
name: dp_toy
task: {{name: text_corpus, train_path: {folder}/train.txt, test_path: {folder}/test.txt,
       num_eval_samples: 16, bleu_references: 20, self_bleu_samples: 8, bleu_orders: [2],
       num_fakes: 32, d_real: 32, eval_batch: 16}}
generator: {{name: lstm, emb_dim: 8, hidden_dim: 8, max_len: 8, epochs: 1, batch_size: 32}}
classifier: {{name: cnn_discriminator, max_len: 8, emb_dim: 8, filter_sizes: [1, 2],
             num_filters: [4, 4], epochs: 1}}
reward: {{name: mc_rollout, rollouts: 1}}
optimizer: {{name: reinforce, lr: 0.01, lr_scheduler: linear, warmup_steps: 1}}
loop: {{rounds: 3, rl_steps: 2, batch_size: 8}}
"""
    path = folder / "dp.yaml"
    path.write_text(recipe)
    return path


def _launch(*args: str) -> list[str]:
    return [str(BIN / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_port()), "-m", "advx", "run", *args]


def test_accelerate_launch_runs_writes_one_folder_and_resumes_after_a_kill(
        tmp_path: Path) -> None:
    recipe, runs = _corpus(tmp_path), tmp_path / "runs"
    # The output goes to a file, not a pipe nobody reads while polling: a full pipe buffer
    # would block the run (seen in fresh-clone runs, whose first imports print more).
    log = tmp_path / "first.log"
    with open(log, "wb") as out:
        first = subprocess.Popen(_launch(str(recipe), "--runs-root", str(runs)), env=_env(),
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 420  # 2 processes' start-up can take minutes on busy cores
    marker = None
    while time.monotonic() < deadline and first.poll() is None:
        found = list(runs.glob("dp_toy/*/checkpoints/round-1/complete.json"))
        if found:
            marker = found[0]
            break
        time.sleep(0.2)
    assert marker is not None, log.read_text(errors="replace")[-3000:]
    os.killpg(first.pid, signal.SIGKILL)  # every rank, mid-run
    first.wait(timeout=30)
    run_dir = marker.parents[2]
    assert [p.name for p in (runs / "dp_toy").iterdir()] == [run_dir.name]

    done = subprocess.run(_launch("--resume", str(run_dir)), env=_env(), timeout=420,
                          capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert done.stdout.count("run directory:") == 1  # the main process alone reports
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete"
    rounds = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds if r["kind"] == "round"] == [0, 1, 2, 3]
    steps = [r for r in rounds if r["kind"] == "step"]
    assert len(steps) == 6  # one record per step, not one per rank
    assert [p.name for p in (runs / "dp_toy").iterdir()] == [run_dir.name]
    assert not list(tmp_path.glob("advx-rank*"))
