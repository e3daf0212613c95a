"""`advx run --from RUN_DIR[:ROUND|:best]`: a new run starts from another run's checkpoint
(weights equal at the start, pre-training skipped, the origin recorded) and every bad
--from is one ConfigError (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from advx.cli import app
from advx.errors import ConfigError
from advx.runner import run_recipe
from typer.testing import CliRunner

runner = CliRunner()


def _states_equal(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _states_equal(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def _part(run_dir: Path, round: int, part: str) -> dict:
    return torch.load(run_dir / "checkpoints" / f"round-{round}" / f"{part}.pt",
                      weights_only=False)


@pytest.fixture
def source(toy_pm, toy_recipe, tmp_path) -> Path:
    return run_recipe(toy_recipe, ["loop.keep_checkpoints=0"], run_dir=tmp_path / "src").run_dir


def test_from_starts_from_the_checkpoint_and_records_it(toy_pm, toy_recipe, source, tmp_path):
    result = run_recipe(toy_recipe, ["loop.rounds=1", "seed=11"], run_dir=tmp_path / "new",
                        start_from=f"{source}:2")
    new = result.run_dir
    for part in ("generator", "classifier"):  # round 0 of the new run = round 2 of the source
        assert _states_equal(_part(new, 0, part), _part(source, 2, part)), part
    assert not _states_equal(_part(new, 0, "generator"), _part(source, 3, "generator"))
    summary = result.summary
    assert summary["from"] == {"run_dir": str(source), "round": 2,
                               "carried": ["classifier", "generator", "optimizer"]}
    assert set(summary["skipped_phases"]) == {"pretrain_generator", "pretrain_classifier"}
    assert summary["seed"] == 11
    recipe_text = (new / "recipe.yaml").read_text()
    assert recipe_text.startswith(f"# from: {source} round 2")
    assert yaml.safe_load(recipe_text)["seed"] == 11  # still a plain recipe
    rounds = [json.loads(x) for x in (new / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds if r["kind"] == "round"] == [0, 1]
    assert "sft/sft/loss" not in rounds[0] and not any("sft" in k for k in rounds[0])


def test_from_changed_optimizer_starts_fresh_and_resume_keeps_origin(
        toy_pm, toy_recipe, source, tmp_path):
    result = run_recipe(toy_recipe, ["loop.rounds=1", "optimizer.lr=0.05"],
                        run_dir=tmp_path / "new", start_from=str(source))
    assert result.summary["from"]["round"] == 3  # no round: the newest checkpoint
    assert result.summary["from"]["carried"] == ["classifier", "generator"]
    resumed = run_recipe(resume=result.run_dir, overrides=["loop.rounds=2"])
    assert resumed.summary["from"] == result.summary["from"]
    assert resumed.summary["rounds_completed"] == 2


def test_from_best_uses_the_monitor(toy_pm, toy_recipe, source, tmp_path):
    rounds = [json.loads(x) for x in (source / "metrics.jsonl").read_text().splitlines()]
    scored = [r for r in rounds if r["kind"] == "round" and r.get("evaluated")]
    best = max(scored, key=lambda r: r["eval/p_real"])["round"]
    result = run_recipe(toy_recipe, ["loop.rounds=1"], run_dir=tmp_path / "new",
                        start_from=f"{source}:best")
    assert result.summary["from"]["round"] == best


def test_bad_from_is_one_config_error(toy_pm, toy_recipe, source, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        run_recipe(toy_recipe, [], run_dir=tmp_path / "a", start_from=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="no complete checkpoint of round 9"):
        run_recipe(toy_recipe, [], run_dir=tmp_path / "b", start_from=f"{source}:9")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "recipe.yaml").write_text((source / "recipe.yaml").read_text())
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        run_recipe(toy_recipe, [], run_dir=tmp_path / "c", start_from=str(empty))
    with pytest.raises(ConfigError, match="exclude each other"):
        run_recipe(resume=source, start_from=str(source))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_from_a_run_without_the_component(toy_pm, toy_recipe, tmp_path):
    text = toy_recipe.read_text().replace("classifier: {name: toy_logreg}\n", "").replace(
        "reward: {name: toy_disc, beta: 0.05}\n", "").replace(
        "optimizer: {name: toy_reinforce, lr: 0.2}\n", "")
    bare = tmp_path / "bare.yaml"
    bare.write_text(text)
    src = run_recipe(bare, [], run_dir=tmp_path / "src").run_dir
    with pytest.raises(ConfigError, match=r"recipe has a classifier .* holds none"):
        run_recipe(toy_recipe, [], run_dir=tmp_path / "new", start_from=str(src))
    assert not (tmp_path / "new").exists()


def test_cli_from_shape_mismatch_exits_2(cold_run, tmp_path):
    from conftest import COLD_START, TINY

    keys = [k for k in TINY if not k.startswith("generator.d_")] + ["generator.d_model=16",
                                                                     "generator.d_ff=32"]
    result = runner.invoke(app, ["run", str(COLD_START), *keys, "--from", f"{cold_run}:best",
                                 "--run-dir", str(tmp_path / "new"), "-q"])
    assert result.exit_code == 2, result.output
    assert "generator.pt does not fit" in result.output and "same sizes" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


def test_from_another_component_name_is_one_config_error(toy_pm, toy_recipe, source, tmp_path):
    from advx.branch import read_start, start_from
    from advx.rundir import RunDir
    from advx.runner import _experiment, prepare_recipe

    start = read_start(str(source))
    start.recipe = {**start.recipe, "generator": {**start.recipe["generator"], "name": "lstm"}}
    spec = prepare_recipe(toy_recipe, [], toy_pm)
    experiment = _experiment(spec, RunDir.at(tmp_path / "new"), toy_pm)
    with pytest.raises(ConfigError, match="checkpoint's generator is 'lstm', the recipe's is "
                                          "'toy_unigram'"):
        start_from(experiment, start, RunDir(tmp_path / "new"))


def test_note_origin_is_the_main_process_s_alone(tmp_path):
    # A data-parallel run's other ranks see the folder read-only: there recipe.yaml may not be
    # written yet, and writing it would add a second `# from:` header.
    from advx.branch import note_origin
    from advx.rundir import RunDir

    origin = {"run_dir": "src", "round": 0, "carried": ["generator"]}
    view = RunDir(tmp_path)
    view.read_only = True
    note_origin(view, origin)  # no recipe.yaml yet: no FileNotFoundError, nothing written
    assert not view.recipe_path.exists()
    view.recipe_path.write_text("name: toy\n")
    note_origin(view, origin)
    assert view.recipe_path.read_text() == "name: toy\n"
    main = RunDir(tmp_path)
    note_origin(main, origin)
    assert main.recipe_path.read_text().startswith("# from: src round 0 (carried: generator;")
