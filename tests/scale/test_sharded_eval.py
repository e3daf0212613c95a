"""Sharded evaluation and classifier fits in a data-parallel run (advx.distributed.shard_map):
two gloo processes through torchrun against the same worker run as one plain process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from advx import distributed
from test_distributed import BIN, ROOT, _env, _port

WORKER = Path(__file__).with_name("dp_eval_worker.py")
RECSYS_WORKER = Path(__file__).with_name("dp_recsys_eval_worker.py")


def _numbers(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def _close(one: dict, two: dict, tol: float) -> None:
    one, two = _numbers(one), _numbers(two)
    assert one.keys() == two.keys()
    worst = max(abs(one[k] - two[k]) for k in one)
    assert worst <= tol, {k: (one[k], two[k]) for k in one if abs(one[k] - two[k]) > tol}


def _run_plain_and_on_two_processes(worker: Path, out: Path) -> None:
    """The worker once as a plain process, then as 2 gloo ranks through torchrun."""
    plain = subprocess.run([sys.executable, str(worker), str(out)], env=_env(),
                           timeout=300, capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr[-3000:]
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_port()),
           str(worker), str(out)]
    two = subprocess.run(cmd, env=_env(), timeout=300, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_evaluate_and_fit_as_one(tmp_path: Path) -> None:
    _run_plain_and_on_two_processes(WORKER, tmp_path)
    one = json.loads((tmp_path / "rank-0-of-1.json").read_text())
    first, second = (json.loads((tmp_path / f"rank-{r}-of-2.json").read_text()) for r in (0, 1))
    assert not one["sharded"] and first["sharded"] and second["sharded"]
    # evaluation of a fixed checkpoint: each rank scored half the cold split, both hold the
    # metrics of the whole split, equal to one process's
    assert first["fixed"] == second["fixed"]
    _close(one["fixed"], first["fixed"], 1e-6)
    assert one["fixed"]["cold/n"] == first["fixed"]["cold/n"] > 0
    # a sharded fit (uneven shares, uneven last minibatch): identical weights on both ranks,
    # the one-process weights up to float rounding, and the same fit metrics / evaluation
    assert first["params"] == second["params"]
    assert max(abs(a - b) for a, b in zip(one["params"], first["params"], strict=True)) < 1e-5
    _close(one["fit"], first["fit"], 1e-6)
    assert first["after"] == second["after"]
    _close(one["after"], first["after"], 1e-6)


@pytest.mark.slow
def test_two_processes_search_half_the_users_each_and_report_the_whole_split(
        tmp_path: Path) -> None:
    """next_item's beam-search evaluation, sharded: each rank searches about half of every
    split's users, both report the metrics of all of them, equal to one process's."""
    _run_plain_and_on_two_processes(RECSYS_WORKER, tmp_path)
    one = json.loads((tmp_path / "recsys-0-of-1.json").read_text())
    first, second = (json.loads((tmp_path / f"recsys-{r}-of-2.json").read_text())
                     for r in (0, 1))
    assert sorted(first["searched"] + second["searched"]) == sorted(one["searched"])
    assert abs(len(first["searched"]) - len(second["searched"])) <= 2  # one a split at most

    def metrics(rank: dict) -> dict:  # eval/seconds: each rank's own clock
        return {k: v for k, v in rank["metrics"].items() if not k.startswith("eval/")}

    assert metrics(first) == metrics(second)
    # the rankings come back in one process's order before the metrics: the same float sums
    # and the same bootstrap SEs (which resample users by position), exactly
    assert any("/hr@" in k and k.endswith("_se") for k in metrics(one))
    assert metrics(first) == pytest.approx(metrics(one), rel=0, abs=0, nan_ok=True)


def test_a_plain_run_calls_fn_on_everything() -> None:
    seen: list[list[int]] = []

    def fn(items):
        seen.append(list(items))
        return torch.tensor(items) * 2

    assert not distributed.is_distributed()
    assert distributed.shard_map(fn, [1, 2, 3]).tolist() == [2, 4, 6]
    assert seen == [[1, 2, 3]]  # one call, on the whole list: the identity
    assert distributed.same_on_every_rank("anything")


@pytest.mark.parametrize(("size", "shares"), [
    (7, [(0, 3), (3, 7)]), (1, [(0, 0), (0, 1)]), (8, [(0, 4), (4, 8)])])
def test_shard_bounds_are_contiguous_and_cover_the_items(monkeypatch, size, shares) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    got = []
    for r in (0, 1):
        monkeypatch.setenv("RANK", str(r))
        got.append(distributed.shard_bounds(size))
    assert got == shares


@pytest.mark.slow
def test_advx_eval_under_torchrun_writes_one_file_with_one_process_metrics(tmp_path: Path) -> None:
    """``torchrun -m advx eval RUN``: the ranks share the next-item evaluation, the main
    process alone reports and writes ``evals/<name>.json``, with one process's metrics."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adagrpo"))
    from adagrpo_kit import write_beauty_fixture

    data = write_beauty_fixture(tmp_path / "data", users=31)
    recipe = ROOT / "recipes" / "policy_beauty.yaml"
    run = subprocess.run(
        [str(BIN / "advx"), "run", str(recipe), "--runs-root", str(tmp_path / "runs"), "-q",
         f"task.path={data / 'seq.txt'}", f"task.attributes={data / 'attrs.json'}",
         "task.semantic_ids=kmeans", "task.codebook=[3,3]", "task.svd_dim=4",
         "task.eval_batch_size=4", "generator.epochs=1", "generator.d_model=16",
         "generator.num_layers=1", "generator.num_heads=2"],
        env=_env(), timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    run_dir = next((tmp_path / "runs" / "policy_beauty").iterdir())
    two = subprocess.run(
        [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_port()),
         "-m", "advx", "eval", str(run_dir), "--name", "two"],
        env=_env(), timeout=300, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("written:") == 1  # the main process reports
    one = subprocess.run([str(BIN / "advx"), "eval", str(run_dir), "--name", "one"],
                         env=_env(), timeout=300, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    assert sorted(p.name for p in (run_dir / "evals").iterdir()) == ["one.json", "two.json"]
    metrics = [{k: v for k, v in json.loads((run_dir / "evals" / f).read_text())["metrics"]
                .items() if not k.startswith("eval/")} for f in ("one.json", "two.json")]
    assert metrics[0]["test/hr@10"] == pytest.approx(metrics[1]["test/hr@10"])
    assert metrics[0] == pytest.approx(metrics[1], rel=1e-12, abs=1e-15)
