"""Compare files: every mistake is exit 2 with one message, before any cell runs; and the
compare files of the published experiments load and validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from advx.cli import app
from advx.compare import check_conditions, load_compare
from compare_helpers import BASE_COMPARE, write_compare
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
TWO = BASE_COMPARE["conditions"]

BAD = [
    ({"seed": 3}, "unknown key 'seed'. Did you mean 'seeds'?"),
    ({"conditions": {"low": {"recipes": "toy.yaml"}, "high": {"recipe": "toy.yaml"}}},
     "conditions.low: unknown key 'recipes'. Did you mean 'recipe'?"),
    ({"conditions": {"low": {"recipe": "missing.yaml"}, "high": {"recipe": "toy.yaml"}}},
     "conditions.low.recipe: file not found"),
    ({"conditions": {"low": {"overrides": ["a=1"]}, "high": {"recipe": "toy.yaml"}}},
     "conditions.low.recipe: missing"),
    ({"conditions": {"low": {"recipe": "toy.yaml"}}}, "needs at least two conditions"),
    ({"conditions": {"a/b": {"recipe": "toy.yaml"}, "high": {"recipe": "toy.yaml"}}},
     "conditions.a/b: the name may only hold"),
    ({"conditions": {"low": {"recipe": "toy.yaml", "overrides": "reward.gain"},
                     "high": {"recipe": "toy.yaml"}}},
     "conditions.low.overrides: expected a mapping {reward.alpha: 0.5} or a list of "
     "'key=value' strings"),
    ({"baseline": "hihg"}, "baseline: 'hihg' is not a condition (low, high). Did you mean 'high'?"),
    ({"primary": "toy/scor"}, "primary: 'toy/scor' is not one of metrics"),
    ({"primary": 5}, "primary: expected one metric name of metrics"),
    ({"baseline": ["low"]}, "baseline: ['low'] is not a condition (low, high)"),
    ({"metrics": []}, "metrics: expected a list of names"),
    ({"seeds": 1}, "seeds: a comparison needs at least 2 seeds"),
    ({"seeds": "three"}, "seeds: expected a list of integers"),
    ({"seeds": [0, 1, 1]}, "repeats a seed"),
    ({"summary": "last"}, "summary: expected 'final' or 'best'"),
    ({"rounds": "all"}, "rounds: expected a list of round numbers"),
    ({"name": "a b"}, "name: 'a b' may only hold"),
    ({"shared_start": "low"}, "shared_start: expected a mapping like"),
    ({"shared_start": {"conditon": "low"}},
     "shared_start: unknown key 'conditon'. Did you mean 'condition'?"),
    ({"shared_start": {"overrides": ["a=1"]}}, "shared_start: name exactly one of"),
    ({"shared_start": {"condition": "low", "recipe": "toy.yaml"}},
     "shared_start: name exactly one of"),
    ({"shared_start": {"condition": "lwo"}},
     "shared_start.condition: 'lwo' is not a condition (low, high). Did you mean 'low'?"),
    ({"shared_start": {"recipe": "missing.yaml"}}, "shared_start.recipe: file not found"),
    ({"shared_start": {"condition": "low", "round": -1}}, "shared_start.round: expected"),
    ({"shared_start": {"condition": "low", "overrides": ["reward.gian=2"]}},
     "shared_start (") ,
    ({"plugins": ["no_such_plugin_module"]}, "cannot import 'no_such_plugin_module'"),
    # each condition's recipe + overrides is validated by the recipe loader, up front
    ({"conditions": {**TWO, "typo": {"recipe": "toy.yaml", "overrides": ["reward.gian=2"]}}},
     "conditions.typo"),
    ({"overrides": ["loop.rounds=two"]}, "loop.rounds"),
    ({"storage": "nope"}, "storage: 'nope' is not a database URL"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_compare_file_is_exit_2_with_one_message(toy, changes, message):
    path = write_compare(toy, **changes)
    result = CliRunner().invoke(app, ["compare", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    assert not any((toy / "runs").glob("compares/*/*/seed-*")), "no cell may run"


def test_unreadable_and_missing_files(toy):
    (toy / "broken.yaml").write_text("conditions: [unclosed\n")
    for argument, message in (("broken.yaml", "cannot read it as YAML"),
                              ("nowhere.yaml", "compare file not found")):
        result = CliRunner().invoke(app, ["compare", argument])
        assert result.exit_code == 2 and message in result.output, result.output


def test_show_before_any_run_says_so(toy):
    path = write_compare(toy)
    result = CliRunner().invoke(app, ["compare", "show", str(path)])
    assert result.exit_code == 2 and "no cells recorded for 'toy_cmp'" in result.output


def test_show_reads_a_sqlite_url_with_query_parameters(toy):
    path = write_compare(toy, seeds=2)
    url = f"sqlite:///{toy / 'cmp.db'}?timeout=30"
    assert CliRunner().invoke(app, ["compare", str(path), "--storage", url]).exit_code == 0
    shown = CliRunner().invoke(app, ["compare", "show", str(path), "--storage", url,
                                     "--no-plots"])
    assert shown.exit_code == 0, shown.output
    assert "| high | `toy/score` | 2 |" in shown.output


def test_defaults_and_forms(toy):
    path = write_compare(toy, seeds=[3, 7], primary=None, baseline=None,
                         overrides={"loop": {"rounds": 2}})
    spec = load_compare(path)
    assert spec.seeds == [3, 7] and spec.primary == "toy/score" and spec.baseline == "low"
    assert spec.conditions["high"].overrides == ["loop.rounds=2", "reward.gain=2.0"]
    assert spec.conditions["high"].cell_overrides(7)[-1] == "seed=7"
    assert spec.cells == [("low", 3), ("high", 3), ("low", 7), ("high", 7)]
    (toy / "compares").mkdir()
    path.rename(toy / "compares" / "named.yaml")
    assert load_compare("named").name == "toy_cmp"  # `advx compare named` finds compares/


COMPARES = sorted((REPO / "compares").glob("*.yaml"))


@pytest.mark.parametrize("path", COMPARES, ids=[p.stem for p in COMPARES])
def test_published_compare_files_validate(path, monkeypatch):
    """Each compare file loads and every condition's recipe validates against the installed
    plugins, without building a model or running anything."""
    monkeypatch.chdir(REPO)
    spec = load_compare(path)
    assert spec.description and len(spec.conditions) >= 2 and spec.primary in spec.metrics
    check_conditions(spec)


def test_spec_survives_the_trip_to_a_spawned_worker(toy):
    """``--jobs N`` hands the spec to spawned workers as a plain dict."""
    from advx.compare import CompareSpec

    spec = load_compare(write_compare(toy, rounds=[0, 3], summary="best"))
    assert CompareSpec.from_dict(spec.to_dict()) == spec


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["compare", "--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "show" in result.output


@pytest.mark.parametrize(("per_round", "message"), [
    (["nope"], "per_round: 'nope' is not one of metrics"),
    (["eval:x/toy/score"], "per_round: 'eval:x/toy/score' is a re-evaluation"),
    ([3], "per_round: expected a list of names"),
])
def test_bad_per_round_is_exit_2(toy, per_round, message):
    metrics = ["toy/score", "toy/gain", "eval:x/toy/score"]
    result = CliRunner().invoke(app, ["compare", str(write_compare(
        toy, per_round=per_round, metrics=metrics))])
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("error:") == 1
