"""`advx eval`, `advx export`, `advx generate`, `advx predict` on one tiny cold-start run:
evaluation is reproducible and leaves the run alone, the export loads with plain
`transformers` (no advx import) to the same numbers, the documented columns are written,
and every bad argument is exit code 2 with one message."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from advx.cli import app
from advx.label_specific import label_posterior
from advx.rollout import Prompt, Sample
from advx.use import open_run
from typer.testing import CliRunner

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _fingerprint(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()
            and p.relative_to(run_dir).parts[0] != "evals"}


def _round_record(run_dir: Path, round: int) -> dict:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return next(r for r in rows if r["kind"] == "round" and r["round"] == round)


# --------------------------------------------------------------------------- eval


def test_eval_reproduces_the_run_and_twice_is_identical(cold_run):
    before = _fingerprint(cold_run)
    first = _invoke("eval", cold_run, "--round", "2", "--name", "again-1")
    second = _invoke("eval", cold_run, "--round", "2", "--name", "again-2")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    a = json.loads((cold_run / "evals/again-1.json").read_text())
    b = json.loads((cold_run / "evals/again-2.json").read_text())
    assert a["metrics"] == b["metrics"] and a["round"] == 2 and a["overrides"] == []
    recorded = _round_record(cold_run, 2)  # the loop's own evaluation of that round
    assert all(recorded[k] == v for k, v in a["metrics"].items())
    assert _fingerprint(cold_run) == before  # nothing but evals/ was written


def test_eval_overrides_change_the_evaluation_only(cold_run):
    result = _invoke("eval", cold_run, "--best", "task.eval_temperature=0.3",
                     "task.eval_generate=4", "--name", "cold-temp")
    assert result.exit_code == 0, result.output
    record = json.loads((cold_run / "evals/cold-temp.json").read_text())
    assert record["overrides"] == ["task.eval_temperature=0.3", "task.eval_generate=4"]
    best = json.loads((cold_run / "summary.json").read_text())["best"]
    assert record["round"] == best["round"]
    assert record["metrics"]["cold/pr_auc"] == best["cold/pr_auc"]  # same classifier weights


@pytest.mark.parametrize("key", ["generator.lr=1.0", "classifier.epochs=9", "loop.rounds=9",
                                 "task.cold_fraction=0.5", "seed=4"])
def test_eval_refuses_a_training_key(cold_run, key):
    result = _invoke("eval", cold_run, key)
    assert result.exit_code == 2
    assert "is not an evaluation key" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------- export

_PLAIN_CHECK = r"""
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5EncoderModel

out, inputs = sys.argv[1], json.loads(sys.argv[2])
gen = f"{out}/generator"
tok = AutoTokenizer.from_pretrained(gen)
model = AutoModelForSeq2SeqLM.from_pretrained(gen).eval()
enc = tok(inputs["prompts"], padding=True, return_tensors="pt")
dec = torch.tensor(inputs["decoder_ids"])
with torch.no_grad():
    logits = model(**enc, decoder_input_ids=dec).logits

cls = f"{out}/classifier"
info = json.load(open(f"{cls}/advx.json"))
ctok = AutoTokenizer.from_pretrained(cls)
encoder = T5EncoderModel.from_pretrained(cls).eval()
head = load_file(f"{cls}/head.safetensors")
texts = [info["input"].format(**row) for row in inputs["rows"]]
batch = ctok(texts, padding=True, truncation=True, max_length=info["max_length"],
             return_tensors="pt")
with torch.no_grad():
    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    probs = torch.softmax(pooled @ head["weight"].T + head["bias"], -1)
assert not any(m == "advx" or m.startswith("advx") for m in sys.modules), "advx imported"
print(json.dumps({"logits": logits.tolist(), "probs": probs.tolist()}))
"""


def test_export_loads_with_plain_transformers(cold_run, tmp_path):
    out = tmp_path / "export"
    result = _invoke("export", cold_run, "--best", "--out", out)
    assert result.exit_code == 0, result.output
    assert {p.name for p in (out / "generator").iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.json", "value_head.safetensors",
        "value_head.json", "advx.json"}
    assert {p.name for p in (out / "classifier").iterdir()} >= {
        "config.json", "model.safetensors", "head.safetensors", "head.json", "README.md"}
    assert json.loads((out / "advx_export.json").read_text())["round"] == json.loads(
        (cold_run / "summary.json").read_text())["best"]["round"]
    rows = [{"query": "steel kettle", "title": "nordic steel kettle"},
            {"query": "red shoes for running", "title": "a blue lamp"}]
    prompts = ["search query relevant to the product: nordic steel kettle", "a blue lamp"]
    with open_run(cold_run, "best") as opened:
        gen = opened.components.generator
        enc = gen.tokenizer(prompts, padding=True, return_tensors="pt")
        dec = torch.tensor([[gen.start_id, 5, 9, 7], [gen.start_id, 11, 4, 3]])
        with torch.no_grad():
            expected_logits = gen.model(**enc, decoder_input_ids=dec).logits
        samples = [Sample(text=r["query"], prompt=Prompt("", {"title": r["title"]}))
                   for r in rows]
        expected_probs = opened.components.classifier.predict_proba(samples)
    payload = json.dumps({"prompts": prompts, "decoder_ids": dec.tolist(), "rows": rows})
    done = subprocess.run([sys.executable, "-c", _PLAIN_CHECK, str(out), payload],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                               "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(got["logits"]), expected_logits, atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(torch.tensor(got["probs"]), expected_probs, atol=1e-6,
                               rtol=1e-5)


# --------------------------------------------------------------------------- generate


def test_generate_cold_split_columns(cold_run, tmp_path):
    out = tmp_path / "gen.jsonl"
    result = _invoke("generate", cold_run, "--split", "cold", "--n", "2", "--temperature",
                     "0.8", "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) % 2 == 0 and len(rows) >= 4
    expected = {"prompt", "product_id", "title", "label", "label_name", "text", "logprob",
                "tokens", "p_irrelevant", "p_relevant", "score", "reward",
                "reward/cls_loss", "reward/log_p_gen", "reward/kl"}
    assert expected <= set(rows[0])
    for row in rows:
        assert row["logprob"] <= 0 and row["tokens"] >= 1
        assert row["score"] == pytest.approx(row[f"p_{row['label_name']}"])
        assert row["p_irrelevant"] + row["p_relevant"] == pytest.approx(1.0, abs=1e-5)
    again = tmp_path / "again.jsonl"
    _invoke("generate", cold_run, "--split", "cold", "--n", "2", "--temperature", "0.8",
            "--out", again)
    assert again.read_text() == out.read_text()  # the evaluation streams: reproducible


def test_generate_for_new_products_from_csv(cold_run, tmp_path):
    products = tmp_path / "new_products.csv"
    products.write_text("product_id,title,description\nnew-1,blue denim jacket,warm\n"
                        "new-2,steel water bottle,\n")
    out = tmp_path / "queries.jsonl"
    result = _invoke("generate", cold_run, "--prompts", products, "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(r["product_id"], r["label_name"]) for r in rows] == [
        ("new-1", "irrelevant"), ("new-1", "relevant"), ("new-2", "irrelevant"),
        ("new-2", "relevant")]  # one prompt per label when the record names none
    assert rows[1]["prompt"] == "search query relevant to the product: blue denim jacket"


def test_generate_best_of_candidates_keeps_the_most_label_specific(cold_run, tmp_path):
    def generated(k: int) -> list[dict]:
        out = tmp_path / f"k{k}.jsonl"
        result = _invoke("generate", cold_run, "--split", "cold", "--candidates", k,
                         "--out", out)
        assert result.exit_code == 0, result.output
        return [json.loads(x) for x in out.read_text().splitlines()]

    plain, best = generated(1), generated(4)
    assert [r["prompt"] for r in best] == [r["prompt"] for r in plain]  # one row per prompt
    with open_run(cold_run) as opened:  # the column is the chosen text's own posterior
        task, generator = opened.components.task, opened.components.generator
        prompts = {p.text: p for p in task.cold_prompts()}
        rollout = generator.sample([prompts[r["prompt"]] for r in best], n=1)
        rollout.texts = [r["text"] for r in best]
        expected = label_posterior(generator, task, rollout)
    got = torch.tensor([r["label_posterior"] for r in best])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert (got <= 0).all()
    # the best of 4 draws is, on average over the prompts, more label-specific than one draw
    assert got.mean() > torch.tensor([r["label_posterior"] for r in plain]).mean()


# --------------------------------------------------------------------------- predict


def test_predict_writes_probabilities(cold_run, tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text("query,title,extra\nsteel kettle,nordic steel kettle,x\n"
                     "red shoes,a blue lamp,y\n")
    out = tmp_path / "scores.csv"
    result = _invoke("predict", cold_run, "--input", table, "--out", out)
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["query", "title", "extra", "p_irrelevant", "p_relevant",
                             "predicted"]
    with open_run(cold_run) as opened:
        expected = opened.components.classifier.predict_proba(
            [Sample("steel kettle", Prompt("", {"title": "nordic steel kettle"}))])
    assert float(rows[0]["p_relevant"]) == pytest.approx(float(expected[0, 1]), abs=1e-6)
    assert rows[1]["predicted"] in ("irrelevant", "relevant")


# --------------------------------------------------------------------------- bad arguments


def _bad_cases(run: Path, tmp: Path) -> list[tuple[list[str], str]]:
    csv_ok = tmp / "ok.csv"
    csv_ok.write_text("query,title\nq,t\n")
    no_title = tmp / "no_title.csv"
    no_title.write_text("query,name\nq,t\n")
    prompts_bad = tmp / "bad.csv"
    prompts_bad.write_text("name\nx\n")
    missing = tmp / "missing-run"
    return [
        (["eval", missing], "does not exist"),
        (["eval", run, "--round", "7"], "no complete checkpoint of round 7"),
        (["eval", run, "--round", "two"], "expected a round number"),
        (["export", run], "missing --out"),
        (["export", missing, "--out", tmp / "e"], "does not exist"),
        (["export", run, "--out", csv_ok], "not an empty folder"),
        (["generate", run, "--split", "cold"], "missing --out"),
        (["generate", run, "--out", tmp / "g.jsonl"], "exactly one of --prompts"),
        (["generate", run, "--split", "warm", "--out", tmp / "g.jsonl"], "only 'cold'"),
        (["generate", run, "--split", "cold", "--n", "0", "--out", tmp / "g.jsonl"],
         "at least 1"),
        (["generate", run, "--split", "cold", "--candidates", "0", "--out",
          tmp / "g.jsonl"], "expected at least 1 (1: no selection)"),
        (["generate", run, "--split", "cold", "--out", tmp / "g.csv"], "ending in .jsonl"),
        (["generate", run, "--prompts", tmp / "nope.csv", "--out", tmp / "g.jsonl"],
         "does not exist"),
        (["generate", run, "--prompts", prompts_bad, "--out", tmp / "g.jsonl"],
         "has no field 'title'"),
        (["predict", run, "--input", csv_ok], "missing --out"),
        (["predict", run, "--out", tmp / "p.csv"], "missing --input"),
        (["predict", run, "--input", no_title, "--out", tmp / "p.csv"],
         "has no column 'title'"),
        (["predict", run, "--input", tmp / "nope.csv", "--out", tmp / "p.csv"],
         "does not exist"),
    ]


def test_every_bad_argument_exits_2_with_one_message(cold_run, tmp_path):
    no_checkpoint = tmp_path / "fresh"
    no_checkpoint.mkdir()
    (no_checkpoint / "recipe.yaml").write_text((cold_run / "recipe.yaml").read_text())
    cases = [*_bad_cases(cold_run, tmp_path),
             (["eval", no_checkpoint], "has no complete checkpoint")]
    for args, message in cases:
        result = _invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert result.output.count("error:") == 1, (args, result.output)
    assert not (tmp_path / "g.jsonl").exists() and not (tmp_path / "p.csv").exists()
