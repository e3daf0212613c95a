"""One rank of the sharded SFT / sampling / fit checks (launched by test_sharded_training.py
through torchrun). Every check compares the sharded computation with the same computation
done in this process as a plain one-process run (:func:`plain`), so one launch covers both;
writes ``OUT/rank-<r>.json``.

* SFT (:class:`advx.generator_kit.SFTLoop`, a toy character model whose samples have
  different token counts, so shares hold unequal tokens): the all-reduced gradient of the
  ranks' shares vs the whole minibatch's; a 2-epoch run with an uneven last minibatch.
* Sampling (:func:`advx.distributed.sample_sharded`, :func:`sharded_sampling`): the gathered
  rollouts of a tiny LSTM and a tiny T5 (prompts of different lengths).
* The ``cnn_discriminator`` and ``ranker`` fits (dropout 0): sharded vs one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from advx.components import BuildContext
from advx.distributed import (
    all_reduce_gradients,
    broadcast_object,
    init,
    rank,
    sample_sharded,
    sharded_sampling,
    world_size,
)
from advx.generator_kit import SFTLoop
from advx.rollout import Prompt, Sample
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ppo"))  # ppo_toy's tiny T5

TEXTS = ["ab", "abcab", "c", "bbbbbba", "cabcabca", "aa", "bcb", "abcabcabcab", "ca", "b",
         "cc", "acbacb", "bab"]  # 13 samples: an uneven last minibatch of 4 (one row)
V = 5  # 0 = start, a, b, c, ...


@contextmanager
def plain() -> Iterator[None]:
    """This process as a plain one-process run (no sharding, no all-reduce): the reference."""
    saved = {k: os.environ.get(k) for k in ("WORLD_SIZE", "RANK")}
    os.environ.update(WORLD_SIZE="1", RANK="0")
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ[key] = value  # type: ignore[assignment]


class CharModel(nn.Module):
    """Next-character model: embedding → tanh → logits (deterministic: no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, 8)
        self.out = nn.Linear(8, V)

    def batch_loss(self, batch: Sequence[Sample]) -> tuple[Tensor, int]:
        """Summed NLL of every character of every text, and the number of characters."""
        total, count = torch.zeros(()), 0
        for sample in batch:
            ids = torch.tensor([ord(c) - 96 for c in sample.text])
            inputs = torch.cat([torch.zeros(1, dtype=torch.long), ids[:-1]])
            logits = self.out(torch.tanh(self.embed(inputs)))
            total = total + nn.functional.cross_entropy(logits, ids, reduction="sum")
            count += len(ids)
        return total, count


def sft_samples() -> list[Sample]:
    return [Sample(text=t, prompt=Prompt(f"p{i}")) for i, t in enumerate(TEXTS)]


def make_sft(**keys: int) -> tuple[CharModel, SFTLoop]:
    torch.manual_seed(1)
    model = CharModel()
    loop = SFTLoop("toy", model, lambda params: torch.optim.AdamW(params, lr=0.05),
                   **{"epochs": 2, "batch_size": 4, "max_grad_norm": 1.0, **keys})
    return model, loop


def flat(module: nn.Module) -> list[float]:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).tolist()


def rows_counter(module: nn.Module) -> list[int]:
    """Rows of every training-mode forward of ``module`` (what this rank trained on)."""
    rows: list[int] = []
    module.register_forward_hook(
        lambda m, args, _: rows.append(int(args[0].shape[0])) if m.training else None)
    return rows


def rng_digest() -> str:
    return hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()


def recording(model: CharModel, texts: list[str]
              ) -> Callable[[Sequence[Sample]], tuple[Tensor, int]]:
    """``model.batch_loss`` that also records the texts it scores."""
    def batch_loss(rows: Sequence[Sample]) -> tuple[Tensor, int]:
        texts.extend(s.text for s in rows)
        return model.batch_loss(rows)
    return batch_loss


def sft_checks() -> dict:
    samples = sft_samples()
    batch = samples[:7]  # uneven shares: 3 and 4 rows
    out: dict = {}
    for accum in (1, 2):
        model, loop = make_sft(grad_accum_steps=accum)
        params = list(model.parameters())
        with plain():
            total, count = model.batch_loss(batch)
            (total / count).backward()
        whole = [p.grad.clone() for p in params]
        model.zero_grad(set_to_none=True)
        texts: list[str] = []
        loop.sharded_backward(batch, recording(model, texts), params)
        out[f"sft_share_accum{accum}"] = texts  # what this rank differentiated
        all_reduce_gradients(params, None)
        out[f"sft_grad_diff_accum{accum}"] = max(
            float((p.grad - g).abs().max()) for p, g in zip(params, whole, strict=True))
    model, loop = make_sft()
    torch.manual_seed(2)
    rows = rows_counter(model.embed)
    out["sft_metrics"] = loop.run(samples, model.batch_loss)
    out["sft_rows"] = len(rows)  # one embedding call per sample
    out["sft_params"], out["sft_rng"] = flat(model), rng_digest()
    with plain():
        model, loop = make_sft()
        torch.manual_seed(2)
        out["sft_plain_metrics"] = loop.run(samples, model.batch_loss)
        out["sft_plain_params"], out["sft_plain_rng"] = flat(model), rng_digest()
    return out


class WordTask:
    def texts(self) -> list[str]:
        return ["the cat sat", "a dog ran far", "the red mat", "a big small cat"]


def sampling_checks(out_dir: Path) -> dict:
    from advx_seqgan.lstm import LSTMConfig, build_lstm
    from ppo_toy import PRODUCTS, ToyTask, make_generator, prompt

    ctx = BuildContext(run_dir=out_dir, seed=0, device="cpu", task=WordTask())
    lstm = build_lstm(LSTMConfig(emb_dim=8, hidden_dim=8, max_len=6, epochs=1), ctx)
    empty = Prompt("")
    torch.manual_seed(3)
    asked: list[int] = []
    original = lstm.sample
    lstm.sample = lambda prompts, **kw: (asked.append(len(prompts)), original(prompts, **kw))[1]
    augment = sample_sharded(lstm, [empty] * 5, n=2, temperature=1.0)  # uneven shares (2, 3)
    del lstm.sample
    with sharded_sampling(lstm):
        evaluation = lstm.sample([empty], n=3)  # one prompt: rank 1's share is empty
    out = {
        "augment_texts": augment.texts, "augment_groups": augment.group_ids.tolist(),
        "augment_lengths": augment.lengths.tolist(),
        "augment_width": augment.response_ids.shape[1],
        "eval_texts": evaluation.texts, "eval_groups": evaluation.group_ids.tolist(),
        "restored": "sample" not in vars(lstm), "rng": rng_digest(), "augment_asked": asked,
    }
    # seq2seq: prompts of different token lengths, so the shares' prompt widths differ
    # transformers saves on rank 0 only: rank 0 writes the tiny T5, the other ranks load a
    # copy of it (as advx.build.build_components does)
    if rank() == 0:
        t5 = make_generator(out_dir / "t5-0", ToyTask())
    broadcast_object(None)  # a barrier
    if rank() != 0:
        shutil.copytree(out_dir / "t5-0", out_dir / f"t5-{rank()}")
        t5 = make_generator(out_dir / f"t5-{rank()}", ToyTask())
    prompts = [prompt(t, c, y) for (t, c), y in zip(PRODUCTS, (1, 0, 1, 0), strict=True)]
    prompts.append(Prompt("q"))
    gathered = sample_sharded(t5, prompts, n=2, temperature=1.0)
    with plain():
        whole = t5.sample(prompts, n=2)
    with torch.no_grad():  # the gathered layout re-scores to the sampled log-probs
        again = t5.policy_outputs(gathered).logprobs
    mask = gathered.response_mask.float()
    out.update({
        "t5_texts": gathered.texts,
        "t5_groups": gathered.group_ids.tolist(),
        "t5_prompts_equal": bool(torch.equal(gathered.prompt_ids, whole.prompt_ids)
                                 and torch.equal(gathered.prompt_mask, whole.prompt_mask)),
        "t5_prompt_texts": [p.text for p in gathered.prompts] == [p.text for p in whole.prompts],
        "t5_rescore_diff": float(((again - gathered.logprobs) * mask).abs().max()),
    })
    return out


def cnn_checks() -> dict:
    from advx_seqgan.cnn import CNNConfig, CNNDiscriminator

    words = ["the", "cat", "sat", "a", "dog", "ran", "far", "red", "mat", "big"]
    gen = torch.Generator().manual_seed(4)
    samples = []
    for i in range(23):
        picked = torch.randint(0, len(words), (int(torch.randint(2, 6, (1,), generator=gen)),),
                               generator=gen)
        samples.append(Sample(" ".join(words[j] for j in picked.tolist()), label=i % 2))
    config = CNNConfig(vocab_size=30, max_len=6, emb_dim=8, filter_sizes=[1, 2],
                       num_filters=[4, 4], dropout=0.0, epochs=2, batch_size=8,
                       valid_fraction=0.2)
    texts = [s.text for s in samples]
    cnn = CNNDiscriminator(config, texts, seed=0, device="cpu")
    rows = rows_counter(cnn.model)
    metrics = cnn.fit(samples)
    with plain():
        reference = CNNDiscriminator(config, texts, seed=0, device="cpu")
        plain_metrics = reference.fit(samples)
    return {"cnn_params": flat(cnn.model), "cnn_metrics": metrics, "cnn_rows": sum(rows),
            "cnn_plain_params": flat(reference.model), "cnn_plain_metrics": plain_metrics}


class Catalogue:
    def __init__(self) -> None:
        self.items = [f"i{k}" for k in range(15)]
        self.index = {item: k for k, item in enumerate(self.items)}

    def item_of(self, text: str) -> str | None:
        return text if text in self.index else None


def ranker_checks() -> dict:
    from advx_recsys.ranker import RankerConfig, SASRecRanker

    gen = torch.Generator().manual_seed(5)
    samples = []
    for user in range(11):
        seq = [f"i{k}" for k in torch.randint(0, 15, (int(torch.randint(3, 7, (1,),
                                                                          generator=gen)),),
                                                     generator=gen).tolist()]
        for t in range(1, len(seq)):
            samples.append(Sample(seq[t], Prompt("", {"history": seq[:t], "user": f"u{user}"}),
                                  label=1 if t % 3 else 0))
    out: dict = {}
    for name, keys in (("sequence", {"training": "sequence", "loss": "ce"}),
                       ("pairs", {"training": "pairs", "loss": "bce", "negatives": 2,
                                  "dropout": 0.1})):
        config = RankerConfig(**{"d_model": 8, "num_layers": 1, "num_heads": 2, "dropout": 0.0,
                                 "max_history": 5, "epochs": 2, "patience": 0,
                                 "select": "heldout", "valid_fraction": 0.2, "batch_size": 5,
                                 **keys})
        data = [s.with_label(1) for s in samples] if name == "sequence" else samples
        torch.manual_seed(0)
        ranker = SASRecRanker(config, Catalogue(), "cpu", seed=0)
        rows = rows_counter(ranker.net.encoder)
        metrics = ranker.fit(data)
        out[f"ranker_{name}_rows"] = sum(rows)
        out[f"ranker_{name}_params"] = flat(ranker.net)
        out[f"ranker_{name}_metrics"] = {k: v for k, v in metrics.items() if "seconds" not in k}
        if name == "sequence":
            with plain():
                torch.manual_seed(0)
                reference = SASRecRanker(config, Catalogue(), "cpu", seed=0)
                ref_rows = rows_counter(reference.net.encoder)
                ref_metrics = reference.fit(data)
            out["ranker_plain_rows"] = sum(ref_rows)
            # vs one process: equal to float rounding, except the attention's key bias, whose
            # gradient is zero in exact arithmetic (softmax ignores a constant per query):
            # AdamW turns its rounding noise (~1e-9) into lr-sized steps of either sign
            d = config.d_model
            worst = 0.0
            for (name, a), b in zip(ranker.net.named_parameters(), reference.net.parameters(),
                                    strict=True):
                diff = (a - b).detach().abs()
                if name.endswith("in_proj_bias"):
                    diff[d : 2 * d] = 0
                worst = max(worst, float(diff.max()))
            out["ranker_plain_diff"] = worst
            out["ranker_plain_metrics"] = {k: v for k, v in ref_metrics.items()
                                           if "seconds" not in k}
    return out


def main(out_dir: Path) -> None:
    init()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {"world_size": world_size()}
    result.update(sft_checks())
    result.update(sampling_checks(out_dir))
    result.update(cnn_checks())
    result.update(ranker_checks())
    (out_dir / f"rank-{rank()}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
