"""``advx.distributed.all_reduce_gradients`` on 2 gloo processes: the cases the PPO gradient
check (test_distributed.py) does not reach."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from test_distributed import BIN, _env, _port

WORKER = Path(__file__).with_name("dp_allreduce_worker.py")
pytestmark = pytest.mark.slow


def test_all_reduce_edge_cases_on_two_processes(tmp_path: Path) -> None:
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_port()),
           str(WORKER), str(tmp_path)]
    done = subprocess.run(cmd, env=_env(), timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]  # (async all-reduces aborted at exit)
    first, second = (json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert first == second  # every rank ends with the same gradients
    assert first["dense"] == [1.5, 1.5, 1.5]
    assert first["low"] == [3.0, 3.0] and first["low_dtype"] == "torch.bfloat16"
    assert first["one_rank"] == [2.0, 2.0]  # a missing gradient counts as zeros
    assert first["nobody"] and first["frozen"]  # missing everywhere / frozen: left alone
    assert first["strided"] == [[0.0, 4.5], [1.5, 6.0], [3.0, 7.5]]
    assert first["loss"] == 1.5
    assert first["nan_first"] == "nan" and first["nan_second"] == 1.0  # a NaN reaches all
