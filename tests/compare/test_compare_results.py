"""advx.results: run folders read back, including runs still going and a line cut by a crash."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from advx.errors import ConfigError
from advx.results import load_run, runs_table


def _write_run(folder, seed=0, summary=None, tail=""):
    folder.mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"name": "toy", "seed": seed}))
    records = [
        {"kind": "round", "round": 0, "evaluated": True, "eval/score": 0.1},
        {"kind": "step", "round": 1, "step": 1, "reward/mean": 0.5},
        {"kind": "step", "round": 1, "step": 2, "reward/mean": 0.7},
        {"kind": "round", "round": 1, "evaluated": False, "improve/reward": 0.6},
        {"kind": "round", "round": 2, "evaluated": True, "eval/score": 0.4 + seed,
         "eval/nan": None},
        {"kind": "future", "round": 2},  # a record kind this reader does not know: ignored
    ]
    text = "".join(json.dumps(r) + "\n" for r in records) + tail
    (folder / "metrics.jsonl").write_text(text)
    (folder / "samples").mkdir()
    (folder / "samples" / "round-2.jsonl").write_text("{}\n")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_a_run_in_progress_with_a_cut_last_line(tmp_path):
    path = _write_run(tmp_path / "run", tail='{"kind": "round", "round": 3, "eval/sc')
    with pytest.warns(UserWarning, match=r"metrics.jsonl:7: undecodable line skipped"):
        run = load_run(path)
    assert run.status == "running" and run.summary is None and not run.finished_ok
    assert [r["round"] for r in run.rounds] == [0, 1, 2]
    assert [s["step"] for s in run.steps] == [1, 2]
    assert run.curve("eval/score") == [(0, 0.1), (2, 0.4)]
    assert run.curve("eval/nan") == []
    assert [r["round"] for r in run.evaluated_rounds()] == [0, 2]
    assert run.value("eval/score") == 0.4  # no summary: the last round that logged it
    assert run.samples == {2: path / "samples" / "round-2.jsonl"}
    assert run.name == "toy" and run.seed == 0


def test_a_finished_run_reads_its_summary(tmp_path):
    summary = {"status": "done", "final": {"eval/score": 0.4}, "best": {"eval/score": 0.9}}
    run = load_run(_write_run(tmp_path / "run", summary=summary))
    assert run.status == "done" and run.finished_ok
    assert run.value("eval/score") == 0.4
    assert run.value("eval/score", "best") == 0.9
    assert run.value("eval/other") is None
    with pytest.raises(ConfigError, match="which: expected 'final' or 'best'"):
        run.value("eval/score", "last")


def test_runs_table(tmp_path):
    runs = [load_run(_write_run(tmp_path / f"r{s}", seed=s, summary={
        "status": "complete", "final": {"eval/score": 0.4 + s}})) for s in range(2)]
    runs.append(load_run(_write_run(tmp_path / "failed", seed=5,
                                    summary={"status": "failed", "final": {}})))
    table = runs_table(runs, ["eval/score"])
    assert list(table.columns) == ["path", "name", "seed", "status", "eval/score"]
    assert table["seed"].tolist() == [0, 1, 5]
    assert table["status"].tolist() == ["complete", "complete", "failed"]
    assert table["eval/score"].tolist()[:2] == [0.4, 1.4]
    assert math.isnan(table["eval/score"].tolist()[2])


def test_not_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match="not an advx run folder"):
        load_run(tmp_path)
