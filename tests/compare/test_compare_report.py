"""advx.compare.report on hand-made cells: the table marks a Student t interval, and a
finished cell without a finite value is named instead of silently shrinking n."""

from __future__ import annotations

import optuna
from advx.compare.cells import Cell
from advx.compare.report import collect, markdown
from advx.compare.spec import CompareSpec, Condition
from optuna.trial import TrialState


def _cell(condition: str, seed: int, metrics: dict, code: str | None = None) -> Cell:
    trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.0, user_attrs={
        "condition": condition, "seed": seed, "metrics": metrics, "rounds": [],
        **({"code": code} if code else {})})
    return Cell(condition, seed, state="done", trial=trial, attempts=1)


def _spec(seeds: list[int]) -> CompareSpec:
    conditions = {c: Condition(name=c, recipe="toy.yaml", overrides=[]) for c in ("low", "high")}
    return CompareSpec(name="r", path="r.yaml", conditions=conditions, seeds=seeds,
                       metrics=["score", "other"], primary="score", baseline="low")


def test_a_nan_value_is_named_and_a_small_n_interval_is_marked_t():
    cells = [_cell("low", s, {"score": 1.0 + s, "other": 0.5}) for s in range(3)]
    cells += [_cell("high", 0, {"score": 2.0, "other": 0.6}),
              _cell("high", 1, {"score": 3.5, "other": float("nan")}),
              _cell("high", 2, {"score": 4.2, "other": None})]
    text = markdown(collect(_spec([0, 1, 2]), cells))
    row = next(line for line in text.splitlines() if line.startswith("| high | `score`"))
    assert row.split("|")[3].strip() == "3" and row.split("|")[5].strip().endswith("(t)")
    other = next(line for line in text.splitlines() if line.startswith("| high | `other`"))
    assert other.split("|")[3].strip() == "1"
    assert "- high seed 1: `other`" in text and "- high seed 2: `other`" in text
    assert "low seed" not in text.split("without a finite value")[1]


def test_a_metric_a_condition_never_logs_is_named_once_not_per_seed():
    cells = [_cell("low", s, {"score": 1.0 + s}) for s in range(3)]
    cells += [_cell("high", s, {"score": 2.0 + s, "other": 0.5 if s else None}) for s in range(3)]
    text = markdown(collect(_spec([0, 1, 2]), cells))
    assert "- low: `other`" in text and "low seed" not in text
    assert "- high seed 0: `other`" in text and "high seed 1" not in text
    assert "| high | `score`" in text and "| high | `other`" not in text  # no pair to form


def test_cells_of_more_than_one_code_version_are_said_to_be():
    older = [_cell("low", s, {"score": 1.0}) for s in range(2)]  # before cells recorded it
    same = [_cell("high", s, {"score": 2.0}, code="advx 0.1.0 git aaa") for s in range(2)]
    assert "more than one code version" not in markdown(collect(_spec([0, 1]), older + same))
    mixed = [same[0], _cell("high", 1, {"score": 2.0}, code="advx 0.1.0 git bbb")]
    text = markdown(collect(_spec([0, 1]), older + mixed))
    assert ("**The done cells ran on more than one code version** (`low`: not recorded ×2; "
            "`high`: advx 0.1.0 git aaa ×1, advx 0.1.0 git bbb ×1)") in text


def test_enough_seeds_give_the_bootstrap_interval_unmarked():
    seeds = list(range(6))
    cells = [_cell("low", s, {"score": 0.0, "other": 0.0}) for s in seeds]
    cells += [_cell("high", s, {"score": 0.1 * s * s % 0.7 + 1, "other": 0.0}) for s in seeds]
    text = markdown(collect(_spec(seeds), cells))
    row = next(line for line in text.splitlines() if line.startswith("| high | `score`"))
    assert row.split("|")[5].strip().startswith("[") and "(t)" not in row
    assert "without a finite value" not in text


def test_equal_differences_say_why_there_is_no_interval():
    cells = [_cell("low", s, {"score": float(s), "other": 0.0}) for s in range(3)]
    cells += [_cell("high", s, {"score": s + 0.5, "other": 0.0}) for s in range(3)]
    text = markdown(collect(_spec([0, 1, 2]), cells))
    row = next(line for line in text.splitlines() if line.startswith("| high | `score`"))
    assert [c.strip() for c in row.split("|")[3:6]] == ["3", "0.5", "– (every d equal)"]


def test_the_tradeoff_table_and_plot_follow_the_temperatures(tmp_path):
    from advx.compare.report import plot_tradeoff

    metrics = ["bleu2", "self_bleu2", "bleu2@t0.7", "self_bleu2@t0.7"]
    spec = CompareSpec(name="t", path="t.yaml", seeds=[0, 1], metrics=metrics, primary="bleu2",
                       baseline="low", tradeoff=("bleu2", "self_bleu2"),
                       conditions={c: Condition(name=c, recipe="toy.yaml", overrides=[])
                                   for c in ("low", "high")})
    cells = [_cell(c, s, {"bleu2": 0.7 + s / 10, "self_bleu2": 0.9, "bleu2@t0.7": 0.8,
                          "self_bleu2@t0.7": 0.95 + s / 100}) for c in ("low", "high")
             for s in (0, 1)]
    data = collect(spec, cells)
    text = markdown(data)
    assert "| low | default | 0.75 ± 0.07071 (2) | 0.9 ± 0 (2) |" in text
    assert "| high | 0.7 | 0.8 ± 0 (2) | 0.955 ± 0.007071 (2) |" in text
    png = plot_tradeoff(data, tmp_path / "tradeoff.png")
    assert png is not None and png.read_bytes()[:4] == b"\x89PNG"


def test_a_tradeoff_needs_both_metrics_at_the_same_temperatures(tmp_path):
    import pytest
    import yaml
    from advx.compare.spec import load_compare
    from advx.errors import ConfigError

    (tmp_path / "toy.yaml").write_text("name: toy\n")
    base = {"name": "q", "conditions": {"a": {"recipe": "toy.yaml"}, "b": {"recipe": "toy.yaml"}},
            "seeds": 2, "metrics": ["bleu2", "self_bleu2", "bleu2@t0.7"]}
    for tradeoff, message in [(["bleu2"], "expected [QUALITY, DIVERSITY]"),
                              (["bleu2", "self_bleu2"], "'self_bleu2' needs at least two points"),
                              (["bleu2", "self_blue2"], "Did you mean 'self_bleu2'?")]:
        path = tmp_path / "q.yaml"
        path.write_text(yaml.safe_dump({**base, "tradeoff": tradeoff}))
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("?", r"\?")):
            load_compare(path)
    path.write_text(yaml.safe_dump({**base, "metrics": [*base["metrics"], "self_bleu2@t0.8"],
                                    "tradeoff": ["bleu2", "self_bleu2"]}))
    with pytest.raises(ConfigError, match="same temperatures"):
        load_compare(path)


def test_per_round_tables_one_per_listed_metric():
    """``per_round``: the primary's table, then one for each other listed metric (a gate's
    open rate per round), from the cells' per-round records; a round no cell logged it in
    (round 0 has no RL step) has no row."""
    import dataclasses

    def cell(condition: str, seed: int, rate: float) -> Cell:
        rounds = [{"round": 0, "score": 1.0 + seed},
                  {"round": 1, "score": 2.0 + seed, "other": rate + 0.1 * seed}]
        trial = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.0, user_attrs={
            "condition": condition, "seed": seed, "metrics": {"score": 2.0 + seed},
            "rounds": rounds})
        return Cell(condition, seed, state="done", trial=trial, attempts=1)

    spec = dataclasses.replace(_spec([0, 1]), per_round=["other"])
    assert spec.round_metrics == ["score", "other"]
    cells = [cell("low", s, 0.2) for s in (0, 1)] + [cell("high", s, 0.6) for s in (0, 1)]
    data = collect(spec, cells)
    assert data.curves == data.by_round["score"]
    text = markdown(data)
    table = text.split("`other` per round")[1].split("\n\n")[1].splitlines()
    assert table[0] == "| round | low | high |"
    assert table[2:] == ["| 1 | 0.25 ± 0.07071 (2) | 0.65 ± 0.07071 (2) |"]
    assert text.index("`score` per round") < text.index("`other` per round")
