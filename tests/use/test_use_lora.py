"""`advx export`, `generate`, `predict`, `eval` and `run --from` on a LoRA run (tiny seq2seq
generator and tiny T5-encoder classifier, both with ``lora: {r: 4}``): the export's merged
models load with plain `transformers` (no advx import) to advx's own numbers, the adapters
load with `peft.PeftModel.from_pretrained` onto the exported base to the same numbers, and
the commands write their documented columns."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from advx.cli import app
from advx.lora import LoRAConfig
from advx.rollout import Prompt, Sample
from advx.use import open_run
from conftest import COLD_START, TINY
from safetensors.torch import load_file
from typer.testing import CliRunner

runner = CliRunner()
LORA = ["generator.lora={r: 4}", "classifier.lora={r: 4, target_modules: [q, v]}"]


def _invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-round cold-start run whose generator and classifier train LoRA
    adapters."""
    run_dir = tmp_path_factory.mktemp("lora") / "run"
    tiny = [o for o in TINY if not o.startswith("loop.rounds=")]
    result = _invoke("run", COLD_START, *tiny, "loop.rounds=1", *LORA, "--run-dir", run_dir,
                     "-q")
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def lora_export(lora_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lora-export") / "export"
    result = _invoke("export", lora_run, "--out", out)
    assert result.exit_code == 0, result.output
    return out


_PLAIN_CHECK = r"""
import json, sys
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, T5EncoderModel

out, inputs = sys.argv[1], json.loads(sys.argv[2])
gen = f"{out}/generator"
tok = AutoTokenizer.from_pretrained(gen)
enc = tok(inputs["prompts"], padding=True, return_tensors="pt")
dec = torch.tensor(inputs["decoder_ids"])
merged = AutoModelForSeq2SeqLM.from_pretrained(gen).eval()
base = AutoModelForSeq2SeqLM.from_pretrained(f"{gen}/base").eval()
with torch.no_grad():
    base_logits = base(**enc, decoder_input_ids=dec).logits
    adapted = PeftModel.from_pretrained(base, f"{gen}/adapter").eval()
    merged_logits = merged(**enc, decoder_input_ids=dec).logits
    adapter_logits = adapted(**enc, decoder_input_ids=dec).logits

cls = f"{out}/classifier"
info = json.load(open(f"{cls}/advx.json"))
ctok = AutoTokenizer.from_pretrained(cls)
head = load_file(f"{cls}/head.safetensors")
texts = [info["input"].format(**row) for row in inputs["rows"]]
batch = ctok(texts, padding=True, truncation=True, max_length=info["max_length"],
             return_tensors="pt")

def probs(encoder):
    with torch.no_grad():
        hidden = encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return torch.softmax(pooled @ head["weight"].T + head["bias"], -1)

merged_probs = probs(T5EncoderModel.from_pretrained(cls).eval())
cls_base = T5EncoderModel.from_pretrained(f"{cls}/base").eval()
base_probs = probs(cls_base)
adapter_probs = probs(PeftModel.from_pretrained(cls_base, f"{cls}/adapter").eval())
assert not any(m.startswith("advx") for m in sys.modules), "advx imported"
print(json.dumps({k: v.tolist() for k, v in [
    ("merged_logits", merged_logits), ("adapter_logits", adapter_logits),
    ("base_logits", base_logits), ("merged_probs", merged_probs),
    ("adapter_probs", adapter_probs), ("base_probs", base_probs)]}))
"""


def test_lora_export_reloads_merged_and_as_adapter(lora_run, lora_export, tmp_path):
    gen_dir, cls_dir = lora_export / "generator", lora_export / "classifier"
    for folder in (gen_dir, cls_dir):
        assert {"config.json", "model.safetensors", "tokenizer.json", "advx.json"} <= {
            p.name for p in folder.iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {
            p.name for p in (folder / "adapter").iterdir()}
        info = json.loads((folder / "advx.json").read_text())
        assert (info["lora_adapter"], info["lora_base"]) == ("adapter", "base")
        merged = load_file(str(folder / "model.safetensors"))
        assert not any("lora_" in k or "base_layer" in k for k in merged)  # plain modules
    assert (gen_dir / "value_head.safetensors").is_file()

    rows = [{"query": "steel kettle", "title": "nordic steel kettle"},
            {"query": "red shoes for running", "title": "a blue lamp"}]
    prompts = ["search query relevant to the product: nordic steel kettle", "a blue lamp"]
    with open_run(lora_run) as opened:
        gen = opened.components.generator
        before = {k: v.clone() for k, v in gen.model.state_dict().items()}
        enc = gen.tokenizer(prompts, padding=True, return_tensors="pt")
        dec = torch.tensor([[gen.start_id, 5, 9, 7], [gen.start_id, 11, 4, 3]])
        with torch.no_grad():
            expected_logits = gen.model(**enc, decoder_input_ids=dec).logits
        samples = [Sample(text=r["query"], prompt=Prompt("", {"title": r["title"]}))
                   for r in rows]
        expected_probs = opened.components.classifier.predict_proba(samples)
        gen.export(tmp_path / "again")  # exporting leaves the policy's adapter in place
        after = gen.model.state_dict()
        assert before.keys() == after.keys() and any("lora_" in k for k in after)
        assert all(torch.equal(before[k], after[k]) for k in before)
    payload = json.dumps({"prompts": prompts, "decoder_ids": dec.tolist(), "rows": rows})
    done = subprocess.run([sys.executable, "-c", _PLAIN_CHECK, str(lora_export), payload],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1",
                               "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    got = {k: torch.tensor(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1])
           .items()}
    for key in ("merged_logits", "adapter_logits"):
        torch.testing.assert_close(got[key], expected_logits, atol=1e-5, rtol=1e-5)
    for key in ("merged_probs", "adapter_probs"):
        torch.testing.assert_close(got[key], expected_probs, atol=1e-5, rtol=1e-5)
    # the adapters trained: without them the numbers differ (the test can tell them apart)
    assert (got["base_logits"] - expected_logits).abs().max() > 1e-4
    assert (got["base_probs"] - expected_probs).abs().max() > 1e-6


def test_generate_and_predict_on_a_lora_run(lora_run, tmp_path):
    out = tmp_path / "gen.jsonl"
    result = _invoke("generate", lora_run, "--split", "cold", "--n", "2", "--out", out)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows and {"prompt", "product_id", "title", "label", "label_name", "text",
                     "logprob", "tokens", "p_irrelevant", "p_relevant", "score", "reward",
                     "reward/cls_loss", "reward/log_p_gen", "reward/kl"} <= set(rows[0])
    assert all(r["logprob"] <= 0 and r["tokens"] >= 1 for r in rows)

    table = tmp_path / "pairs.csv"
    table.write_text("query,title\nsteel kettle,nordic steel kettle\nred shoes,a blue lamp\n")
    scores = tmp_path / "scores.csv"
    result = _invoke("predict", lora_run, "--input", table, "--out", scores)
    assert result.exit_code == 0, result.output
    with scores.open() as handle:
        table_rows = list(csv.DictReader(handle))
    assert list(table_rows[0]) == ["query", "title", "p_irrelevant", "p_relevant",
                                   "predicted"]
    assert float(table_rows[0]["p_irrelevant"]) + float(table_rows[0]["p_relevant"]) == (
        pytest.approx(1.0, abs=1e-5))


def test_eval_on_a_lora_run_reproduces_its_record(lora_run, tmp_path):
    result = _invoke("eval", lora_run, "--name", "again")
    assert result.exit_code == 0, result.output
    record = json.loads((lora_run / "evals/again.json").read_text())
    logged = [json.loads(x) for x in (lora_run / "metrics.jsonl").read_text().splitlines()]
    last = next(r for r in logged if r["kind"] == "round" and r["round"] == record["round"])
    assert record["metrics"]["cold/pr_auc"] == pytest.approx(last["cold/pr_auc"], abs=1e-6)


def test_run_from_a_lora_run_starts_from_its_adapters(lora_run, tmp_path):
    tiny = [o for o in TINY if not o.startswith("loop.rounds=")]
    new = tmp_path / "new"
    result = _invoke("run", COLD_START, *tiny, "loop.rounds=1", *LORA, "--from", lora_run,
                     "--run-dir", new, "-q")
    assert result.exit_code == 0, result.output
    source_rounds = sorted(int(p.name.split("-")[1]) for p in
                           (lora_run / "checkpoints").glob("round-*"))

    def generator_state(run: Path, round: int) -> dict:
        part = torch.load(run / "checkpoints" / f"round-{round}" / "generator.pt",
                          weights_only=False)
        return part["model"]

    started, origin = generator_state(new, 0), generator_state(lora_run, source_rounds[-1])
    assert any("lora_" in k for k in started) and started.keys() == origin.keys()
    # π_ref of the new run is the loaded policy: its adapter was folded into the base
    # (advx.lora.fold_adapter), so the stored tensors differ but the effective weights
    # W + alpha/r · B A are the source's, and the adapter restarts at zero
    adapted = [k.removesuffix(".lora_A.default.weight") for k in origin if "lora_A" in k]
    assert adapted
    assert all(torch.equal(started[k], origin[k]) for k in origin
               if not any(k.startswith(f"{layer}.") for layer in adapted))
    scale = LoRAConfig().alpha / 4  # generator.lora={r: 4}, alpha at its default

    def effective(state: dict, layer: str) -> torch.Tensor:
        return state[f"{layer}.base_layer.weight"] + scale * (
            state[f"{layer}.lora_B.default.weight"] @ state[f"{layer}.lora_A.default.weight"])

    for layer in adapted:
        torch.testing.assert_close(effective(started, layer), effective(origin, layer),
                                   atol=1e-6, rtol=1e-5)
        assert not started[f"{layer}.lora_B.default.weight"].any()


def test_sequence_classification_lora_export(tmp_path):
    """A LoRA ``arch: sequence_classification`` classifier (adapters injected, head trained in
    full): merged directory and adapter (with the head as peft's ``modules_to_save``) give the
    classifier's probabilities; the adapter loads onto the model it started from."""
    from advx.components import BuildContext
    from advx.lora import LoRAConfig
    from advx_encoder_classifier.classifier import (
        EncoderClassifierConfig,
        build_encoder_classifier,
    )
    from advx_hf import train_tokenizer
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig
    from transformers import BertForSequenceClassification as Bert

    class Task:
        def texts(self) -> list[str]:
            return ["red shoes for running", "a blue lamp", "steel kettle"] * 4

    tokenizer = train_tokenizer(Task().texts(), vocab_size=60)
    base = tmp_path / "tiny-bert"
    Bert(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=32, num_labels=2,
                    pad_token_id=tokenizer.pad_token_id)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    classifier = build_encoder_classifier(
        EncoderClassifierConfig(model=str(base), arch="sequence_classification",
                                input="{query} | {title}",
                                lora=LoRAConfig(r=2, target_modules=["query", "value"])),
        BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=Task()))
    with torch.no_grad():  # stands in for training: adapters and head away from their start
        for param in classifier.net.parameters():
            if param.requires_grad:
                param.add_(0.5 * torch.randn_like(param))
    classifier.export(tmp_path / "cls")
    info = json.loads((tmp_path / "cls/advx.json").read_text())
    assert (info["lora_adapter"], info["lora_base"]) == ("adapter", str(base))
    rows = [("red shoes", "a blue lamp"), ("steel kettle", "steel kettle")]
    expected = classifier.predict_proba([Sample(q, Prompt("", {"title": t})) for q, t in rows])
    tok = AutoTokenizer.from_pretrained(tmp_path / "cls")
    batch = tok([info["input"].format(query=q, title=t) for q, t in rows], padding=True,
                truncation=True, max_length=info["max_length"], return_tensors="pt")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls").eval()
    adapted = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(base), tmp_path / "cls/adapter")
    untouched = AutoModelForSequenceClassification.from_pretrained(base).eval()
    with torch.no_grad():
        for model in (merged, adapted.eval()):
            torch.testing.assert_close(torch.softmax(model(**batch).logits, -1), expected,
                                       rtol=1e-5, atol=1e-5)
        assert not torch.allclose(torch.softmax(untouched(**batch).logits, -1), expected,
                                  atol=1e-4)


def test_causal_lora_export(tmp_path):
    """A LoRA causal generator (peft's default target modules): the merged directory and the
    adapter on the exported ``base/`` give the generator's own logits."""
    from advx.components import BuildContext
    from advx.lora import LoRAConfig
    from advx_causal.generator import CausalConfig, build_causal
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    class Task:
        def texts(self) -> list[str]:
            return ["red shoes for running", "a blue lamp", "steel kettle"] * 4

    generator = build_causal(CausalConfig(d_model=16, num_heads=2, vocab_size=60,
                                          lora=LoRAConfig(r=2)),
                             BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=Task()))
    with torch.no_grad():  # stands in for training: the adapters away from their start
        for param in generator.model.parameters():
            if param.requires_grad:
                param.add_(0.5 * torch.randn_like(param))
    generator.export(tmp_path / "gen")
    ids = torch.tensor([[3, 5, 7, 9, 4], [6, 8, 4, 5, 10]])
    generator.model.eval()
    with torch.no_grad():
        expected = generator.model(input_ids=ids).logits
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "gen").eval()
        base = AutoModelForCausalLM.from_pretrained(tmp_path / "gen/base").eval()
        base_logits = base(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(base, tmp_path / "gen/adapter").eval()
        for model in (merged, adapted):
            torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-5,
                                       atol=1e-5)
    assert (base_logits - expected).abs().max() > 1e-4
