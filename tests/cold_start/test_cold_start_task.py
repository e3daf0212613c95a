"""Task ``product_relevance``: reading tables by mapping, the warm/cold split, prompts,
bad input and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from advx.components import BuildContext, Components
from advx.errors import ConfigError, DataError
from advx.rollout import Rollout
from advx_product_relevance import ProductRelevanceConfig, build_product_relevance
from advx_product_relevance.baselines import tokens
from advx_product_relevance.data import demo_table

SHARED_DATA = Path(__file__).resolve().parents[2] / "../shared/data"


def table(n_products: int = 20) -> pd.DataFrame:
    """Every query is unique and names its product, so a leak is detectable by string."""
    rows = []
    for p in range(n_products):
        for k, grade in enumerate(["high", "low", "high", "mid"]):
            rows.append({
                "sku": f"P{p:02d}",
                "name": f"widget number {p}",
                # a quoted newline: only a real CSV parser keeps this in one row
                "blurb": f"line one of {p}\nline two" if p % 2 else "",
                "search": f"query {k} for product P{p:02d}",
                "grade": grade,
            })
    return pd.DataFrame(rows)


MAPPING = dict(
    preset="",
    columns={"query": "search", "label": "grade", "product_id": "sku"},
    fields={"title": "name", "description": "blurb"},
    label_map={"high": 1, "low": 0, "mid": None},
    cold_fraction=0.25,
)


def build(tmp_path: Path, **keys):
    ctx = BuildContext(run_dir=tmp_path / "run", seed=0, device="cpu")
    return build_product_relevance(ProductRelevanceConfig(**{**MAPPING, **keys}), ctx)


def write(df: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_column_and_label_mapping_per_format(tmp_path, suffix):
    path = write(table(), tmp_path / f"data{suffix}")
    task = build(tmp_path, path=str(path))
    rows = task.warm_rows + task.cold_rows
    assert len(rows) == 20 * 3  # "mid" rows are dropped by the null in the label map
    assert {r.label for r in rows} == {0, 1}
    by_query = {r.query: r for r in rows}
    assert by_query["query 0 for product P01"].label == 1
    assert by_query["query 1 for product P01"].label == 0
    # the newline inside a quoted field stayed in its row and is collapsed to a space
    assert by_query["query 0 for product P01"].fields["description"] == "line one of 1 line two"
    assert by_query["query 0 for product P02"].fields == {"title": "widget number 2",
                                                          "description": ""}


def test_directory_with_glob_reads_every_file(tmp_path):
    df = table()
    folder = tmp_path / "folds"
    folder.mkdir()
    write(df.iloc[:40], folder / "fold1.csv")
    write(df.iloc[40:], folder / "fold2.csv")
    write(df.iloc[:4], folder / "other.csv")  # not matched by the glob
    task = build(tmp_path, path=str(folder), files="fold*.csv")
    assert len(task.warm_rows) + len(task.cold_rows) == 60


def test_split_is_by_product_and_nothing_cold_reaches_training(tmp_path):
    task = build(tmp_path, path=str(write(table(), tmp_path / "d.csv")))
    cold, warm = set(task.cold_ids), set(task.warm_ids)
    assert len(cold) == 5 and len(warm) == 15 and not cold & warm
    cold_queries = {r.query for r in task.cold_rows}
    assert {s.text for s in task.cold_eval()} == cold_queries
    assert all(s.prompt.meta["product_id"] in cold for s in task.cold_eval())

    for name, samples in [("generator_train", task.generator_train()),
                          ("classifier_train", task.classifier_train())]:
        assert samples, name
        assert not {s.text for s in samples} & cold_queries, name
        assert not {s.prompt.meta["product_id"] for s in samples} & cold, name
        # no training sample mentions a cold product's query anywhere (prompt or fields)
        blob = json.dumps([[s.text, s.prompt.text, dict(s.prompt.meta)] for s in samples])
        assert not any(q in blob for q in cold_queries), name

    tokenizer_texts = "\n".join(task.texts())
    assert not any(q in tokenizer_texts for q in cold_queries)
    # cold products' METADATA is known at training time, and is there
    assert all(task.products[p]["title"] in tokenizer_texts for p in cold)

    # augment and RL prompts are for cold products, and carry no real cold query
    prompts = task.augment_prompts(1) + task.rl_prompts(64, np.random.default_rng(0))
    assert {p.meta["product_id"] for p in prompts} <= cold
    assert not any(q in json.dumps([p.text, dict(p.meta)]) for p in prompts
                   for q in cold_queries)


def test_split_is_deterministic_and_seeded(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    assert build(tmp_path, path=path).cold_ids == build(tmp_path, path=path).cold_ids
    assert build(tmp_path, path=path).cold_ids != build(tmp_path, path=path, split_seed=3).cold_ids


def test_prompts_labels_and_synthetic_samples(tmp_path):
    task = build(tmp_path, path=str(write(table(), tmp_path / "d.csv")), augment_per_product=2,
                 prompt_template="{label_name} query for {title}")
    prompts = task.augment_prompts(1)
    assert len(prompts) == len(task.cold_ids) * 2 * 2
    p = prompts[0]
    assert p.text == f"{p.meta['label_name']} query for {p.meta['title']}"
    assert p.meta["label_name"] == ["irrelevant", "relevant"][p.meta["label"]]
    rollout = Rollout(prompts=prompts[:3], prompt_ids=torch.zeros(3, 1),
                      prompt_mask=torch.ones(3, 1),
                      response_ids=torch.zeros(3, 2), response_mask=torch.ones(3, 2),
                      logprobs=torch.zeros(3, 2), texts=["blue widget", "  ", "cheap one"],
                      group_ids=torch.arange(3))
    synthetic = task.synthetic_samples(rollout)
    assert [s.text for s in synthetic] == ["blue widget", "cheap one"]  # empty text dropped
    assert [s.label for s in synthetic] == [prompts[0].meta["label"], prompts[2].meta["label"]]
    assert all(s.prompt.meta["synthetic"] for s in synthetic)


def test_max_augment_products_rotates_over_rounds(tmp_path):
    task = build(tmp_path, path=str(write(table(40), tmp_path / "d.csv")), max_augment_products=4)
    first = {p.meta["product_id"] for p in task.augment_prompts(1)}
    second = {p.meta["product_id"] for p in task.augment_prompts(2)}
    assert len(first) == len(second) == 4 and not first & second


class Oracle:
    """A stand-in classifier: probability of 'relevant' from a rule."""

    def __init__(self, flip: bool = False) -> None:
        self.flip = flip

    def predict_proba(self, samples):
        p = torch.tensor([float((s.label == 1) != self.flip) * 0.8 + 0.1 for s in samples])
        return torch.stack([1 - p, p], 1)

    def loss(self, samples):
        probs = self.predict_proba(samples)
        return -torch.log(probs[torch.arange(len(samples)), [s.label for s in samples]])


def test_evaluate_scores_cold_real_queries(tmp_path):
    task = build(tmp_path, path=str(write(table(), tmp_path / "d.csv")))
    good = task.evaluate(Components(task=task, classifier=Oracle()), "pretrain")
    bad = task.evaluate(Components(task=task, classifier=Oracle(flip=True)), "pretrain")
    assert good["cold/pr_auc"] == pytest.approx(1.0)
    assert good["cold/roc_auc"] == pytest.approx(1.0)
    assert good["cold/accuracy"] == pytest.approx(1.0) and good["cold/f1"] == pytest.approx(1.0)
    assert bad["cold/roc_auc"] == pytest.approx(0.0)
    assert bad["cold/pr_auc"] == pytest.approx(good["cold/positive_rate"], abs=0.2)
    assert good["cold/n"] == len(task.cold_rows)


# ---------------------------------------------------------------------------- bad input


def test_missing_column_names_column_and_key(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    with pytest.raises(DataError, match=r"'serch'.*task\.columns\.query"):
        build(tmp_path, path=path, columns={"query": "serch", "label": "grade"})
    with pytest.raises(DataError, match=r"'titel'.*task\.fields\.title"):
        build(tmp_path, path=path, fields={"title": "titel"})


def test_label_outside_mapping(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    with pytest.raises(DataError, match=r"label 'mid'.*task\.label_map"):
        build(tmp_path, path=path, label_map={"high": 1, "low": 0})


def test_empty_cold_split(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    with pytest.raises(DataError, match="empty cold-start split"):
        build(tmp_path, path=path, cold_fraction=0.0)
    with pytest.raises(DataError, match="empty warm split"):
        build(tmp_path, path=path, cold_fraction=1.0)


def test_products_without_any_text_field(tmp_path):
    df = table()
    df.loc[df.sku == "P04", ["name", "blurb"]] = ""
    path = str(write(df, tmp_path / "d.csv"))
    with pytest.raises(DataError, match=r"no text in any mapped field.*drop_empty_products"):
        build(tmp_path, path=path)
    task = build(tmp_path, path=path, drop_empty_products=True)
    assert "P04" not in task.products
    with pytest.raises(ConfigError, match=r"task\.fields is empty"):
        build(tmp_path, path=path, fields={})


def test_bad_template_and_missing_file(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    with pytest.raises(ConfigError, match=r"prompt_template.*'colour'"):
        build(tmp_path, path=path, prompt_template="{colour} {title}")
    with pytest.raises(DataError, match="no such file"):
        build(tmp_path, path=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match="preset"):
        build(tmp_path, preset="crowdflour")


def test_sft_other_negatives_are_unambiguous_warm_and_generator_only(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    plain = build(tmp_path, path=path)
    task = build(tmp_path, path=path, sft_other_negatives=0.5)
    real = plain.generator_train()
    assert task.generator_train()[:len(real)] == real
    extra = task.generator_train()[len(real):]
    assert len(extra) == round(0.5 * len(real)) == 22
    owner = {r.query: r.product_id for r in task.warm_rows}
    for s in extra:
        product = s.prompt.meta["product_id"]
        assert s.label == s.prompt.meta["label"] == 0
        title = task.products[product]["title"]
        assert s.prompt.text == f"search query irrelevant to the product: {title}"
        # a warm product beside a warm query of ANOTHER product sharing no word with its fields
        assert product in task.warm_ids and owner[s.text] != product
        assert not set(tokens(s.text)) & set(tokens(" ".join(task.products[product].values())))
    assert len({(s.text, s.prompt.meta["product_id"]) for s in extra}) > 1
    # the classifier's data, the split and the evaluation are untouched; the draw is fixed
    assert task.classifier_train() == plain.classifier_train()
    assert task.cold_eval() == plain.cold_eval()
    assert build(tmp_path, path=path, sft_other_negatives=0.5).generator_train() == \
        task.generator_train()
    # fit_other_negatives: the classifier's turn, another draw, the generator untouched
    fit = build(tmp_path, path=path, fit_other_negatives=1.0)
    assert fit.generator_train() == real
    assert fit.classifier_train()[:len(real)] == plain.classifier_train()
    fit_extra = fit.classifier_train()[len(real):]
    assert len(fit_extra) == len(real) and all(s.label == 0 for s in fit_extra)
    assert fit_extra[:len(extra)] != extra


@pytest.mark.parametrize("key", ["sft_other_negatives", "fit_other_negatives"])
def test_other_negatives_bad_values(tmp_path, key):
    path = str(write(table(), tmp_path / "d.csv"))
    with pytest.raises(ConfigError, match=rf"{key} must be ≥ 0"):
        build(tmp_path, path=path, **{key: -0.1})
    with pytest.raises(ConfigError, match=rf"{key} needs two classes"):
        build(tmp_path, path=path, label_names=["a", "b", "c"], **{key: 1.0})
    # every query shares "widget" with every title: no unambiguous pair exists
    overlapping = table().assign(search=lambda d: "widget " + d["search"])
    with pytest.raises(DataError, match=rf"found only 0 of \d+ .*Lower task.{key}"):
        build(tmp_path, path=str(write(overlapping, tmp_path / "o.csv")), **{key: 1.0})


def test_sft_title_queries_are_warm_title_crops_of_real_query_length(tmp_path):
    longer = table().assign(
        name=lambda d: "big red " + d["name"] + " deluxe",                  # 6 words
        search=lambda d: [("q " if i % 2 else "") + f"P{i // 4:02d} x" for i in range(len(d))])
    path = str(write(longer, tmp_path / "d.csv"))
    plain = build(tmp_path, path=path)
    task = build(tmp_path, path=path, sft_title_queries=0.5)
    real = plain.generator_train()
    assert task.generator_train()[:len(real)] == real
    extra = task.generator_train()[len(real):]
    assert len(extra) == round(0.5 * len(real))
    lengths = set()
    for s in extra:
        product = s.prompt.meta["product_id"]
        title = task.products[product]["title"]
        assert product in task.warm_ids and s.label == s.prompt.meta["label"] == 1
        assert s.prompt.text == f"search query relevant to the product: {title}"
        words = s.text.split()
        lengths.add(len(words))
        # a run of consecutive title words, as long as a real query (2 or 3 words here)
        assert " ".join(words) in " ".join(tokens(title))
        assert s.text.split()[0] in tokens(title)
    assert lengths == {2, 3}
    assert len({s.text for s in extra}) > 5
    assert task.classifier_train() == plain.classifier_train()
    assert task.cold_eval() == plain.cold_eval()
    assert build(tmp_path, path=path, sft_title_queries=0.5).generator_train() == \
        task.generator_train()


def test_sft_title_queries_bad_values(tmp_path):
    path = str(write(table(), tmp_path / "d.csv"))
    with pytest.raises(ConfigError, match="sft_title_queries must be ≥ 0"):
        build(tmp_path, path=path, sft_title_queries=-1)
    no_title = table().assign(name="", blurb="a description")
    with pytest.raises(DataError, match=r"sft_title_queries=1.0: no warm product has a word "
                                        r"in its first field \('title'\)"):
        build(tmp_path, path=str(write(no_title, tmp_path / "n.csv")), sft_title_queries=1.0)


def test_relabel_asks_the_same_product_for_the_other_label(tmp_path):
    from advx.components import RequestsLabels

    task = build(tmp_path, path=str(write(table(), tmp_path / "d.csv")))
    assert isinstance(task, RequestsLabels)
    prompt = task.prompt(task.cold_ids[0], 1)
    other = task.relabel(prompt, 0)
    assert task.requested_label(prompt) == 1 and task.requested_label(other) == 0
    assert other == task.prompt(task.cold_ids[0], 0)
    assert task.relabel(other, 1) == prompt
    with pytest.raises(ConfigError, match="eval_candidates must be ≥ 1"):
        build(tmp_path, path=str(write(table(), tmp_path / "d.csv")), eval_candidates=0)


# ---------------------------------------------------------------------------- presets


def test_demo_preset_is_deterministic_and_labelled_synthetic(tmp_path):
    assert demo_table() == demo_table()
    assert all(r["description"].startswith("synthetic demo product") for r in demo_table())
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu")
    task = build_product_relevance(ProductRelevanceConfig(preset="demo"), ctx)
    assert len(task.cold_ids) == 48 and len(task.warm_ids) == 192
    assert {s.label for s in task.cold_eval()} == {0, 1}


@pytest.mark.skipif(not (SHARED_DATA / "crowdflower").exists(),
                    reason="../shared/data/crowdflower is absent (shared data not mounted)")
def test_crowdflower_preset_loads(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu")
    task = build_product_relevance(ProductRelevanceConfig(preset="crowdflower"), ctx)
    rows = task.warm_rows + task.cold_rows
    assert len(rows) == 10158  # every row of the 10 folds, multi-line descriptions included
    assert np.mean([r.label for r in rows]) == pytest.approx(6171 / 10158)  # only 4 → relevant
    assert not set(task.cold_ids) & set(task.warm_ids)
    assert len(task.cold_ids) == round(0.2 * len(task.products))
