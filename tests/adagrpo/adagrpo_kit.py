"""Shared builders for the AdaGRPO tests and ``benchmarks/grpo_step.py``: a tiny causal
generator, a GRPO batch on it, and a TRL ``GRPOTrainer`` around the same model."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from advx import BuildContext, Prompt
from advx_causal import CausalConfig, CausalGenerator, build_causal
from advx_seq2seq import Seq2SeqConfig, Seq2SeqGenerator, build_seq2seq

WORDS = [f"a{i}" for i in range(12)] + [f"b{i}" for i in range(12)]


class WordTask:
    """The one Task method a ``tiny`` causal generator needs: texts for its tokenizer."""

    def texts(self) -> list[str]:
        return [" ".join(WORDS)]


def tiny_causal(seed: int = 0, **overrides) -> CausalGenerator:
    sizes = {"d_model": 32, "num_layers": 2, "num_heads": 2, "max_new_tokens": 6, **overrides}
    cfg = CausalConfig(**sizes)
    return build_causal(cfg, BuildContext(run_dir=Path("."), seed=seed, device="cpu",
                                          task=WordTask()))


def tiny_seq2seq(seed: int = 0, **overrides) -> Seq2SeqGenerator:
    """A tiny T5 with a word tokenizer over :data:`WORDS` (the TIGER-like policy's layout).

    Built in a fresh temporary folder: ``build_seq2seq`` saves a tiny model under
    ``<run_dir>/generator-tiny`` and *reloads* one already there, so a shared folder (the
    working directory) would hand every later call the first call's model, whatever its
    seed and sizes, and leave the model in the checkout."""
    sizes = {"d_model": 32, "num_layers": 2, "num_heads": 2, "d_kv": 16, "d_ff": 64,
             "max_new_tokens": 6, "tokenizer": "word", **overrides}
    run_dir = Path(tempfile.mkdtemp(prefix="advx-tiny-seq2seq-"))
    return build_seq2seq(Seq2SeqConfig(**sizes), BuildContext(
        run_dir=run_dir, seed=seed, device="cpu", task=WordTask()))


def grpo_batch(seed: int = 0, prompts: int = 2, group: int = 4):
    """A rollout of ``prompts × group`` rows with equal-length prompts, a perturbed reference
    and old log-probs (so ratios ≠ 1 and clipping/KL are exercised), and advantages."""
    torch.manual_seed(seed)
    generator = tiny_causal(seed)
    texts = [" ".join(WORDS[3 * i : 3 * i + 3]) for i in range(prompts)]
    rollout = generator.sample([Prompt(t) for t in texts], n=group)
    g = torch.Generator().manual_seed(seed)
    mask = rollout.response_mask.float()
    noise = torch.randn(mask.shape, generator=g)
    rollout.logprobs = (rollout.logprobs + 0.3 * noise) * mask
    rollout.ref_logprobs = (rollout.logprobs + 0.2 * torch.randn(mask.shape, generator=g)) * mask
    advantages = torch.randn(rollout.batch_size, generator=g)
    return generator, rollout, advantages


def trl_trainer(generator: CausalGenerator, out: Path, beta: float, epsilon: float,
                loss_type: str, num_generations: int, max_completion_length: int,
                use_bias_correction_kl: bool = False):
    """TRL's GRPOTrainer on the generator's own model (CPU, no logging)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    # With beta > 0 TRL loads its own reference model from the policy's path; give it one
    # (unused: the reference log-probs come in the inputs, as advx's loop supplies them).
    generator.save(out / "policy")
    generator.model.config._name_or_path = str(out / "policy")
    args = GRPOConfig(
        output_dir=str(out), beta=beta, epsilon=epsilon, loss_type=loss_type,
        num_generations=num_generations, per_device_train_batch_size=num_generations,
        max_completion_length=max_completion_length, temperature=1.0, report_to=[],
        use_bias_correction_kl=use_bias_correction_kl, use_cpu=True, bf16=False,
        logging_steps=1000, save_strategy="no",
    )
    trainer = GRPOTrainer(
        model=generator.model, reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=args, train_dataset=Dataset.from_dict({"prompt": ["a0 a1"] * num_generations}),
        processing_class=generator.tokenizer,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(); no accumulation
    return trainer


def write_beauty_fixture(folder: Path, users: int = 40, items: int = 30, seed: int = 0) -> Path:
    """A small file in Beauty's format (``user item1 item2 ...``, ids from 1) plus an
    item → attributes JSON; sequences follow item-id order loosely so they are learnable."""
    import json
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in range(1, users + 1):
        start = rng.randint(1, items)
        length = rng.randint(4, 8)
        seq = [((start + 2 * k - 1) % items) + 1 for k in range(length)]
        lines.append(" ".join(map(str, [u, *seq])))
    (folder / "seq.txt").write_text("\n".join(lines) + "\n")
    attributes = {str(i): [i % 5 + 1, 10 + i % 3, 20 + (i // 7)] for i in range(1, items + 1)}
    (folder / "attrs.json").write_text(json.dumps(attributes))
    return folder
