"""A real database: two compare workers (separate processes, as on two machines) share the
cells of one study on PostgreSQL; every cell runs exactly once.

CI starts the server with `.ci/postgres.sh` (a throwaway cluster on 127.0.0.1) and exports
ADVX_TEST_POSTGRES_URL; without it, or with the server unreachable, this test skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from advx.compare import load_cells, load_compare
from compare_helpers import write_compare

pytestmark = pytest.mark.postgres

def test_two_workers_share_the_cells_of_one_postgres_study(toy, postgres_url):
    url = postgres_url
    name = f"toy_pg_{uuid.uuid4().hex[:8]}"  # a fresh study per test run in a shared database
    path = write_compare(toy, name=name, overrides=[
        f"task.barrier={toy / 'barrier'}", f"task.marker={toy / 'marks'}"])
    command = [sys.executable, "-m", "advx.compare", "run", str(path), "--storage", url]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen(command, cwd=toy, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output

    cells = load_cells(load_compare(path), url)
    assert all(c.state == "done" and c.attempts == 1 for c in cells), [
        (c.condition, c.seed, c.state, c.attempts) for c in cells]
    assert len({c.trial.user_attrs["pid"] for c in cells}) == 2  # both workers ran cells
    folders = sorted(p.parent for p in (toy / "runs/compares" / name).glob("*/*/recipe.yaml"))
    assert folders == sorted(Path(c.run_dir) for c in cells)
    assert len(list((toy / "marks").iterdir())) == len(cells) * 4  # each run evaluated once
