"""End to end: `advx run recipes/ppo_cls_loss.yaml` at tiny size, the no-leak guarantee
through the whole loop, and bad input reaching the CLI as exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import advx_hf
import pytest
from advx.cli import app
from advx.runner import run_recipe
from advx_encoder_classifier.classifier import EncoderClassifier
from advx_product_relevance import ProductRelevanceConfig
from advx_product_relevance.task import load_rows, split_products
from advx_seq2seq.generator import Seq2SeqGenerator
from omegaconf import OmegaConf
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes/ppo_cls_loss.yaml"
TINY = ["task.demo_products=36", "task.eval_generate=8", "generator.epochs=1",
        "generator.d_model=32", "generator.d_ff=64", "classifier.epochs=1",
        "classifier.d_model=32", "classifier.d_ff=64", "loop.rounds=2", "loop.rl_steps=2",
        "loop.batch_size=4", "optimizer.epochs=1"]
runner = CliRunner()


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_ppo_cls_loss_recipe_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", str(RECIPE), *TINY, "--run-dir", str(run_dir), "-q"])
    assert result.exit_code == 0, result.output
    records = _records(run_dir)
    rounds = [r for r in records if r["kind"] == "round"]
    steps = [r for r in records if r["kind"] == "step"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    for r in rounds:  # the paper's metric after pre-training and after every round
        assert 0.0 <= r["cold/pr_auc"] <= 1.0 and 0.0 <= r["cold/roc_auc"] <= 1.0
        assert "gen/distinct_ratio" in r and "gen/cls_loss" in r
    assert rounds[1]["cls/n_synthetic"] > 0  # round 1 retrained the classifier on D_1
    assert rounds[2]["cls/n_synthetic"] > rounds[1]["cls/n_synthetic"]  # D_2 = D_1 ∪ D_syn
    assert len(steps) == 4
    for s in steps:  # every reward term logged beside the total
        assert {"reward/total", "reward/cls_loss", "reward/log_p_gen", "reward/kl"} <= set(s)
    examples = (run_dir / "cold_start" / "round-2.jsonl").read_text().splitlines()
    assert len(examples) == 8 and {"query", "label", "title"} <= set(json.loads(examples[0]))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("recipe", ["cls_no_augment.yaml", "sft_augment.yaml"])
def test_baseline_recipes_run(tmp_path, recipe):
    keys = [k for k in TINY if not k.startswith(("generator.", "optimizer.", "loop.rl", "loop.b"))]
    if recipe == "sft_augment.yaml":
        keys += ["generator.epochs=1", "generator.d_model=32", "generator.d_ff=64"]
    result = runner.invoke(app, ["run", str(REPO / "recipes" / recipe), *keys, "--run-dir",
                                 str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    rounds = [r for r in _records(tmp_path) if r["kind"] == "round"]
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert all("cold/pr_auc" in r for r in rounds)
    assert not any(r["kind"] == "step" for r in _records(tmp_path))  # no RL in the baselines
    synthetic = [r.get("cls/n_synthetic", 0) for r in rounds]
    assert (synthetic[-1] > 0) == (recipe == "sft_augment.yaml")


def test_best_of_k_augmentation_and_evaluation_run_end_to_end(tmp_path):
    keys = [k for k in TINY if not k.startswith(("optimizer.", "loop.rl", "loop.b"))]
    result = runner.invoke(app, ["run", str(REPO / "recipes/sft_augment.yaml"), *keys,
                                 "loop.augment_candidates=3", "task.eval_candidates=2",
                                 "--run-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    rounds = [r for r in _records(tmp_path) if r["kind"] == "round"]
    for r in rounds[1:]:  # 7 cold products x 2 labels: one kept of 3 per prompt, not 3
        assert 0 < r["augment/new"] <= 14
        assert 0.0 < r["augment/label_posterior"] <= 1.0
    assert len((tmp_path / "cold_start" / "round-2.jsonl").read_text().splitlines()) == 8


def test_label_consistency_reward_runs_with_the_real_reference(tmp_path):
    keys = [k for k in TINY if not k.startswith(("loop.rounds", "loop.rl_steps"))]
    result = runner.invoke(app, ["run", str(RECIPE), *keys, "loop.rounds=1", "loop.rl_steps=2",
                                 "reward.label_consistency=1.0", "--run-dir", str(tmp_path),
                                 "-q"])
    assert result.exit_code == 0, result.output
    steps = [r for r in _records(tmp_path) if r["kind"] == "step"]
    assert len(steps) == 2
    for s in steps:  # a log-posterior of two labels under the frozen SFT policy: in (−inf, 0]
        assert s["reward/label_log_posterior"] <= 0.0
        assert s["reward/consistency_term"] == pytest.approx(s["reward/label_log_posterior"])


def _unique_query_table(path: Path) -> Path:
    """Every query names its product, so any leak shows up as a substring."""
    lines = ["sku,name,search,grade"]
    for p in range(24):
        for k, grade in enumerate(["high", "low", "high", "low"]):
            lines.append(f"P{p:02d},widget number {p},zq{p:02d}x{k} widget,{grade}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_no_cold_query_reaches_any_training_step(tmp_path, monkeypatch):
    """Record every text that generator SFT, classifier fits and tokenizer training see
    during a full run (pretrain, augment, classify, PPO) and look for cold queries."""
    seen: list[str] = []

    def spy(original, texts_of):
        def wrapper(*args, **kwargs):
            seen.extend(texts_of(*args, **kwargs))
            return original(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(EncoderClassifier, "fit", spy(
        EncoderClassifier.fit, lambda self, samples: [self.render(s) for s in samples]))
    monkeypatch.setattr(Seq2SeqGenerator, "sft", spy(
        Seq2SeqGenerator.sft, lambda self, samples: [s.text + " " + s.prompt.text
                                                     for s in samples]))
    monkeypatch.setattr(advx_hf, "train_tokenizer", spy(
        advx_hf.train_tokenizer, lambda texts, *a, **k: list(texts)))

    recipe = OmegaConf.load(RECIPE)
    recipe.task = OmegaConf.create({
        "name": "product_relevance", "preset": "", "path": str(_unique_query_table(
            tmp_path / "table.csv")),
        "columns": {"query": "search", "label": "grade", "product_id": "sku"},
        "fields": {"title": "name"}, "label_map": {"high": 1, "low": 0},
        "cold_fraction": 0.25, "eval_generate": 4,
    })
    result = run_recipe(recipe, [k for k in TINY if not k.startswith("task.")],
                        run_dir=tmp_path / "run")
    assert result.summary["status"] == "complete"

    keys = OmegaConf.to_container(recipe.task)
    config = ProductRelevanceConfig(**{k: v for k, v in keys.items() if k != "name"})
    warm, cold = split_products(load_rows(config), 0.25, 0)
    cold_tags = {r.query.split()[0] for r in cold}
    warm_tags = {r.query.split()[0] for r in warm}
    assert len(cold_tags) == 24 and seen
    blob = "\n".join(seen)
    assert not [tag for tag in cold_tags if tag in blob]
    assert all(tag in blob for tag in warm_tags)  # the spies did see the training data


def test_bad_input_exits_with_code_2(tmp_path):
    table = _unique_query_table(tmp_path / "t.csv")
    base = ["run", str(RECIPE), *TINY, "task.preset=''", f"task.path={table}",
            "task.columns.query=search", "task.columns.label=grade", "task.fields.title=name",
            "task.label_map.high=1", "--run-dir", str(tmp_path / "run"), "-q"]
    result = runner.invoke(app, [*base, "task.columns.product_id=product",
                                 "task.label_map.low=0"])
    assert result.exit_code == 2, result.output
    assert "column 'product' (mapped by recipe key task.columns.product_id)" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, base)  # "low" is not in the label map
    assert result.exit_code == 2 and "label 'low'" in result.output
    result = runner.invoke(app, [*base, "task.label_map.low=0", "task.cold_fraction=0"])
    assert result.exit_code == 2 and "empty cold-start split" in result.output
