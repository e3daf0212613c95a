"""compares/seqgan_coco_texygen.yaml (issue 14 item 6, prepared, not yet run): it loads and
every cell validates without building a model; it is Texygen's own SeqGAN schedule (80 MLE
epochs and 80 discriminator calls shared by MLE and SeqGAN, 100 adversarial epochs of 1 g-step
+ 15 discriminator calls of 128 fakes and 3 minibatches, Texygen's small CNN; ≥ 3 seeds); and
every metric it reports, the temperature curve included, is a name the text task logs at the
compare's own task settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from advx.compare import check_conditions, load_compare
from advx.components import Components
from advx.runner import prepare_recipe
from advx_seqgan.lstm import LSTMConfig, LSTMGenerator
from advx_text_tasks.tasks import TextCorpusConfig, TextCorpusTask

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "compares" / "seqgan_coco_texygen.yaml"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # compare files name recipes relative to the working directory


@pytest.fixture(scope="module")
def spec():
    return load_compare(FILE)


def _resolved(recipe: str, overrides: list[str]) -> dict:
    return prepare_recipe(recipe, overrides).resolved


def test_the_file_loads_and_every_cell_validates(spec):
    check_conditions(spec)  # the shared start and both conditions, against the plugins
    assert spec.name == "seqgan_coco_texygen" and set(spec.conditions) == {"mle", "seqgan"}
    assert len(spec.seeds) >= 3 and spec.baseline == "mle" and spec.primary == "bleu2"


def test_mle_and_seqgan_share_texygens_80_epoch_start(spec):
    start = spec.shared_start
    assert start is not None and start.round == 0
    seed = spec.seeds[0]
    begun = _resolved(start.recipe, start.cell_overrides(seed))
    assert begun["generator"]["epochs"] == 80  # Texygen's pre-training epochs
    assert begun["loop"]["pretrain_d_steps"] > 0  # the discriminator is pre-trained once
    mle = _resolved(spec.conditions["mle"].recipe, spec.conditions["mle"].cell_overrides(seed))
    seqgan = _resolved(spec.conditions["seqgan"].recipe,
                       spec.conditions["seqgan"].cell_overrides(seed))
    assert mle["loop"]["rounds"] == 0  # the start, re-evaluated
    assert seqgan["loop"]["rounds"] == 100  # Texygen's adversarial_epoch_num
    # everything that shapes the models is the start's: the branch loads its weights, so the
    # generator and discriminator blocks must be the ones the start trained
    for block in ("generator", "classifier", "task"):
        assert mle[block] == begun[block] == seqgan[block], block


def test_every_metric_is_one_the_text_task_logs_at_the_compares_settings(spec, tmp_path):
    """The curve is in the table only if the names match the task's ``<metric>@t<τ>``: run
    the task's evaluation on a tiny corpus with the compare's temperatures and orders."""
    cell = spec.conditions["seqgan"]
    task_block = _resolved(cell.recipe, cell.cell_overrides(spec.seeds[0]))["task"]
    temperatures = [float(t) for t in task_block["temperatures"]]
    assert len(temperatures) >= 4 and min(temperatures) < 1 < max(temperatures)
    curve = {f"{m}@t{t:g}" for t in temperatures if t != 1.0 for m in ("bleu2", "self_bleu2")}
    assert curve <= set(spec.metrics), "the quality-diversity curve is not reported"

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"a man rides a {w} down the street\n"
                              for w in ("bike", "horse", "skateboard", "bus")) * 3)
    task = TextCorpusTask(TextCorpusConfig(
        train_path=str(corpus), test_path=str(corpus), num_eval_samples=6, self_bleu_samples=6,
        temperatures=temperatures, bleu_orders=list(task_block["bleu_orders"])))
    generator = LSTMGenerator(LSTMConfig(vocab="word", vocab_size=30, max_len=10), task.texts())
    logged = set(task.evaluate(Components(task=task, generator=generator), "test"))
    missing = [m for m in spec.metrics if m not in logged]
    assert not missing, f"{missing} are not logged by the text task"


def test_the_schedule_is_texygens_own_seqgan(spec):
    """geek-ai/Texygen models/seqgan/Seqgan.py (bc57374): every setting that sizes the
    discriminator's training and the adversarial epoch, as recipes/seqgan_coco_texygen.yaml
    cites them. The SeqGAN paper's schedule (recipes/seqgan_coco.yaml) would fail here."""
    cell = spec.conditions["seqgan"]
    r = _resolved(cell.recipe, cell.cell_overrides(spec.seeds[0]))
    assert r["loop"]["pretrain_d_steps"] == 80  # train_discriminator × pre_epoch_num
    assert (r["loop"]["rl_steps"], r["loop"]["batch_size"], r["loop"]["d_steps"]) == (1, 64, 15)
    assert r["loop"]["improve_first"] and r["loop"]["augment_mode"] == "replace"
    assert (r["task"]["num_fakes"], r["task"]["d_real"]) == (128, 0)  # generate_num; all reals
    cls = r["classifier"]
    assert (cls["epochs"], cls["max_batches"], cls["batch_size"]) == (1, 3, 64)  # 3 minibatches
    assert (cls["filter_sizes"], cls["num_filters"]) == ([2, 3], [100, 200])
    assert (cls["emb_dim"], cls["dropout"], cls["l2_reg"], cls["lr"]) == (32, 0.0, 0.2, 1e-4)
    assert (r["reward"]["rollouts"], r["reward"]["update_rate"]) == (16, 0.8)
    gen = r["generator"]
    assert (gen["emb_dim"], gen["hidden_dim"], gen["epochs"], gen["batch_size"]) == (32, 32, 80, 64)
