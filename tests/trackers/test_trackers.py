"""The tensorboard, mlflow and wandb loggers, tested by reading back what each one wrote with
the tracker's own reader: TensorBoard's EventAccumulator, MLflow's MlflowClient, and
``wandb leet inspect --json`` (W&B's reader of an offline run's ``.wandb`` log)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import advx.plugins
import advx_trackers
import pytest
from advx.errors import ConfigError
from advx.rundir import RunDir
from advx.runner import run_recipe
from advx_trackers.trackers import flatten, mlflow_key, scalars
from core_toys import TOY_RECIPE, ToyPlugin

RECIPE_LOGGERS = "[tensorboard, {name: mlflow, experiment: toys}, {name: wandb, project: toys}]"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One toy run (2 rounds × 3 steps) with all three trackers; what each should hold."""
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVX_LOAD_PLUGINS", "loggers")
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            mp.setenv(var, str(root / "wandb-home" / var.lower()))
        mp.setenv("WANDB_MODE", "offline")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        manager = advx.plugins.get_plugin_manager(reload=True)
        manager.register(ToyPlugin(), name="toys")
        manager.register(advx_trackers, name="trackers")
        try:
            recipe = root / "toy.yaml"
            recipe.write_text(
                TOY_RECIPE.replace("loggers: [{name: toy_memory}]", f"loggers: {RECIPE_LOGGERS}")
                .replace("rounds: 3", "rounds: 2")
            )
            result = run_recipe(recipe, run_dir=root / "run")
        finally:
            advx.plugins.reset_plugin_manager()
    records = RunDir(result.run_dir).read_metrics()
    return {
        "run_dir": result.run_dir,
        "steps": [r for r in records if r["kind"] == "step"],
        "rounds": [r for r in records if r["kind"] == "round"],
        "samples": {
            n: (result.run_dir / "samples" / f"round-{n}.jsonl").read_text().splitlines()
            for n in (1, 2)
        },
    }


def _same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    """Same x values in the same order, y values equal to float32 precision."""
    return [x for x, _ in got] == [x for x, _ in want] and [y for _, y in got] == pytest.approx(
        [y for _, y in want], rel=1e-6
    )


def _series(records: list[dict[str, Any]], key: str, axis: str) -> list[tuple[int, float]]:
    return [(int(r[axis]), float(r[key])) for r in records if key in r]


# ============================================================================ TensorBoard


def test_tensorboard_scalars_recipe_and_samples_read_back(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked["run_dir"] / "tensorboard"),
                           size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    steps, rounds = tracked["steps"], tracked["rounds"]
    assert len(steps) == 6 and len(rounds) == 3
    # every reward term of every step, at x = global_step
    for key in ("reward/total", "reward/disc_prob", "reward/kl", "optim/loss"):
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        want = _series(steps, key, "global_step")
        assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
        assert _same(got, want), key
    # round metrics at x = round (0 is pre-training)
    got = [(e.step, e.value) for e in acc.Scalars("eval/p_real")]
    assert _same(got, _series(rounds, "eval/p_real", "round"))
    assert [s for s, _ in got] == [0, 1, 2]
    # the recipe and the run folder as text, a samples table per round with samples
    recipe = acc.Tensors("recipe/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "toy_unigram" in recipe and "rl_steps: 3" in recipe
    run_dir = acc.Tensors("run_dir/text_summary")[0].tensor_proto.string_val[0].decode()
    assert run_dir == str(tracked["run_dir"])
    tables = acc.Tensors("samples/text_summary")
    assert [t.step for t in tables] == [1, 2]
    table = tables[0].tensor_proto.string_val[0].decode()
    first = json.loads(tracked["samples"][1][0])
    assert table.startswith("| phase | round |") and f"| {first['text']} |" in table


# ============================================================================ MLflow


def test_mlflow_metrics_params_tags_and_tables_read_back(tracked):
    from mlflow.tracking import MlflowClient

    run_dir: Path = tracked["run_dir"]
    client = MlflowClient(tracking_uri=f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}")
    run_id = (run_dir / "mlflow" / "run_id").read_text()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "toys"
    # the flattened resolved recipe as parameters; the run folder as a tag
    params = run.data.params
    assert params["loop.rounds"] == "2" and params["generator.name"] == "toy_unigram"
    assert params["reward.beta"] == "0.05" and params["loggers.0.name"] == "tensorboard"
    assert run.data.tags["advx.run_dir"] == str(run_dir.resolve())
    # metrics history: steps at their global step, rounds at their round
    for key in ("reward/total", "reward/disc_prob", "reward/kl", "rollout/length"):
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert _same(history, _series(tracked["steps"], key, "global_step")), key
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "eval/p_real"))
    assert _same(history, _series(tracked["rounds"], "eval/p_real", "round"))
    # per-round sample tables as artifacts, with every row of the round's samples file
    names = {f.path for f in client.list_artifacts(run_id, "samples")}
    assert names == {"samples/round-1.json", "samples/round-2.json"}
    table = json.loads(Path(client.download_artifacts(run_id, "samples/round-2.json",
                                                      str(run_dir / "dl"))).read_text())
    rows = [json.loads(line) for line in tracked["samples"][2]]
    assert len(table["data"]) == len(rows)
    text_col = table["columns"].index("text")
    assert [r[text_col] for r in table["data"]] == [r["text"] for r in rows]
    recipe = Path(client.download_artifacts(run_id, "recipe.yaml", str(run_dir / "dl")))
    assert "toy_reinforce" in recipe.read_text()


# ============================================================================ W&B


def _wandb_records(run_dir: Path, index: int = 0, count: int = 1) -> list[dict[str, Any]]:
    """Every record of the offline run's ``.wandb`` log, through W&B's own reader."""
    logs = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == count, logs
    cli = Path(sys.executable).with_name("wandb")
    out = subprocess.run([str(cli), "leet", "inspect", "--json", str(logs[index])],
                         capture_output=True, text=True, check=True, timeout=120)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def test_wandb_offline_history_config_and_tables_read_back(tracked):
    run_dir: Path = tracked["run_dir"]
    records = _wandb_records(run_dir)
    kinds = [r["type"] for r in records]
    assert "run" in kinds and "exit" in kinds
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["project"] == "toys" and run["run_id"] == (run_dir / "wandb_run_id").read_text()
    config = run["config"]["update"]
    assert config["loop"]["rounds"] == 2 and config["generator"]["name"] == "toy_unigram"
    assert config["advx_run_dir"] == str(run_dir.resolve())
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    for key in ("reward/total", "reward/disc_prob", "reward/kl"):
        got = [(h["global_step"], h[key]) for h in history if key in h]
        assert _same(got, _series(tracked["steps"], key, "global_step")), key
    got = [(h["round"], h["eval/p_real"]) for h in history if "eval/p_real" in h]
    assert _same(got, _series(tracked["rounds"], "eval/p_real", "round"))
    # step metrics are plotted against global_step, round metrics against round
    metrics = {r["metric"].get("name"): r["metric"].get("step_metric")
               for r in records if r["type"] == "metric"}
    assert metrics["reward/total"] == "global_step" and metrics["eval/p_real"] == "round"
    assert next(r["exit"] for r in records if r["type"] == "exit").get("exit_code", 0) == 0
    # one samples table per round with samples, every row of the round's file
    tables = sorted((run_dir / "wandb").glob("offline-run-*/files/media/table/samples_*.json"))
    assert len(tables) == 2
    contents = [json.loads(t.read_text()) for t in tables]
    by_round = {c["data"][0][c["columns"].index("round")]: c for c in contents}
    assert set(by_round) == {1, 2}
    rows = [json.loads(line) for line in tracked["samples"][2]]
    table = by_round[2]
    assert len(table["data"]) == len(rows)
    assert [r[table["columns"].index("text")] for r in table["data"]] == [r["text"] for r in rows]


# ============================================================================ errors, helpers


def test_a_missing_tracker_library_is_a_config_error(pm, toy_recipe, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(ConfigError, match=r"advx\[trackers\]"):
        run_recipe(toy_recipe("[wandb]"), run_dir=tmp_path / "run")


def test_wandb_mode_is_checked(pm, toy_recipe, tmp_path):
    with pytest.raises(ConfigError, match="mode must be one of offline, online, disabled"):
        run_recipe(toy_recipe("[{name: wandb, mode: ofline}]"), run_dir=tmp_path / "run")


def test_flatten_scalars_and_mlflow_keys():
    assert flatten({"loop": {"rounds": 4}, "loggers": [{"name": "csv"}], "tags": []}) == {
        "loop.rounds": 4, "loggers.0.name": "csv", "tags": "[]"}
    record = {"kind": "round", "round": 1, "global_step": 3, "evaluated": True,
              "eval/hr@10": 0.5, "augment/new": 8, "note": "x"}
    assert scalars(record) == {"eval/hr@10": 0.5, "augment/new": 8.0}
    assert mlflow_key("valid/hr@10") == "valid/hr_10" and mlflow_key("a b/c-d.e:f") == "a b/c-d.e:f"


def test_resume_continues_the_same_mlflow_and_wandb_runs(pm, toy_recipe, tmp_path):
    from mlflow.tracking import MlflowClient

    recipe = toy_recipe("[mlflow, wandb]").read_text().replace("rounds: 2", "rounds: 1")
    (tmp_path / "short.yaml").write_text(recipe)
    first = run_recipe(tmp_path / "short.yaml", run_dir=tmp_path / "run")
    run_id = (first.run_dir / "mlflow" / "run_id").read_text()
    again = run_recipe(resume=first.run_dir, overrides=["loop.rounds=2"])
    assert again.summary["resumed_from_round"] == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{first.run_dir / 'mlflow' / 'mlflow.db'}")
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["advx.resumed"] == "true"
    assert run.data.params["loop.rounds"] == "1"  # MLflow keeps a parameter's first value
    rounds = sorted(m.step for m in client.get_metric_history(run_id, "eval/p_real"))
    assert rounds == [0, 1, 2]
    steps = sorted(m.step for m in client.get_metric_history(run_id, "reward/total"))
    assert steps == [1, 2, 3, 4, 5, 6]
    # W&B: a second offline log of the same run id, with the rounds the resumed run did
    first_log, second_log = _wandb_records(first.run_dir, 0, 2), _wandb_records(first.run_dir, 1, 2)
    ids = {next(r["run"]["run_id"] for r in log if r["type"] == "run")
           for log in (first_log, second_log)}
    assert ids == {(first.run_dir / "wandb_run_id").read_text()}
    rounds = [r["history"]["item"]["round"] for r in second_log
              if r["type"] == "history" and "eval/p_real" in r["history"]["item"]]
    assert rounds == [2]


@pytest.mark.parametrize(("status", "mlflow", "exit_code"), [
    ("complete", "FINISHED", 0), ("interrupted", "KILLED", 1), ("failed", "FAILED", 1)])
def test_the_run_status_maps_to_each_trackers_own(status, mlflow, exit_code):
    """A Ctrl-C'd run is KILLED in MLflow (not FAILED); W&B gets a non-zero exit code."""
    from advx_trackers.trackers import MlflowLogger, WandbLogger

    calls: list[tuple[str, object]] = []

    class Client:
        def set_terminated(self, run_id: str, status: str) -> None:
            calls.append((run_id, status))

    class Run:
        def __init__(self) -> None:
            self.summary: dict[str, str] = {}

        def finish(self, exit_code: int) -> None:
            calls.append(("wandb", exit_code))

    ml = object.__new__(MlflowLogger)
    ml.client, ml.run_id = Client(), "r1"
    ml._finish(status)
    wb = object.__new__(WandbLogger)
    wb.run = Run()
    wb._finish(status)
    assert calls == [("r1", mlflow), ("wandb", exit_code)]
