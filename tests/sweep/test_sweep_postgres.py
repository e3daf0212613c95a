"""A real database: two sweep workers (separate processes, as on two machines) share one
study on PostgreSQL; every trial is recorded exactly once with its run directory.

CI starts the server with `.ci/postgres.sh` (a throwaway cluster on 127.0.0.1) and exports
ADVX_TEST_POSTGRES_URL; without it, or with the server unreachable, this test skips.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from advx.sweep import make_storage
from optuna.trial import TrialState
from sweep_helpers import write_sweep

pytestmark = pytest.mark.postgres

def test_two_workers_share_one_postgres_study(toy, postgres_url):
    url = postgres_url
    name = f"toy_pg_{uuid.uuid4().hex[:8]}"  # a fresh study per test run in a shared database
    path = write_sweep(
        toy, name=name, n_trials=6,
        # the first trial of each worker waits for the other: both are known to take part
        overrides={"task.barrier": str(toy / "barrier")},
        sampler={"name": "random"},  # unseeded: two seeded workers would repeat each other
    )
    command = [sys.executable, "-m", "advx.sweep", "run", str(path), "--storage", url,
               "--runs-root", "runs"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=toy, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output

    study = optuna.load_study(study_name=name, storage=make_storage(url))
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers)
    # Each worker starts a trial only while fewer than n_trials exist: at most one extra.
    assert 6 <= len(trials) <= 7, [t.state for t in trials]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    run_dirs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(run_dirs)) == len(run_dirs)
    for trial, run_dir in zip(trials, run_dirs, strict=True):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["final"]["toy/score"] == pytest.approx(trial.value)
        assert run_dir.name == f"trial-{trial.number:04d}"
    # Exactly-once, seen from the other side: every run folder belongs to one trial.
    folders = sorted((toy / "runs" / "sweeps" / name).glob("trial-*"))
    assert folders == sorted(run_dirs)
    assert len({t.user_attrs["worker"] for t in trials}) == 2, "one worker did all trials"
    optuna.delete_study(study_name=name, storage=make_storage(url))


def test_postgres_script_never_fails_its_caller(tmp_path):
    """`.ci/run` sources the script under `set -euo pipefail`: when no server can be started it
    must say why and let CI go on (the test above then skips)."""
    script = Path(__file__).resolve().parents[2] / ".ci" / "postgres.sh"
    blocked = tmp_path / "file"
    blocked.write_text("")  # a file where the cluster folder should go: mkdir fails
    shell = (f"set -euo pipefail; unset ADVX_TEST_POSTGRES_URL; source {script}; "
             "echo \"url=${ADVX_TEST_POSTGRES_URL:-unset}\"")
    env = {**os.environ, "ADVX_PG_PORT": "54398", "ADVX_PG_DIR": str(blocked / "pg")}
    done = subprocess.run(["bash", "-c", shell], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "url=unset" in done.stdout
    assert "[postgres.sh]" in done.stderr and "will skip" in done.stderr
