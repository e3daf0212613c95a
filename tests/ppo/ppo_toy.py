"""A toy product-relevance task satisfying the Task protocol, for testing the PPO plugins alone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from advx.components import BuildContext, Components
from advx.rollout import Prompt, Rollout, Sample
from advx_seq2seq import Seq2SeqConfig, Seq2SeqGenerator, build_seq2seq

PRODUCTS = [
    ("running shoes", "sports"),
    ("leather wallet", "accessories"),
    ("phone case", "electronics"),
    ("coffee mug", "kitchen"),
]
QUERIES = {
    "running shoes": ["shoes for running", "trail runner shoes", "light jogging shoes"],
    "leather wallet": ["mens wallet", "brown leather wallet", "slim card wallet"],
    "phone case": ["iphone case", "clear phone cover", "rugged phone case"],
    "coffee mug": ["big coffee mug", "ceramic cup", "travel mug"],
}


def prompt(title: str, category: str, label: int) -> Prompt:
    text = f"write a {'relevant' if label else 'irrelevant'} query for: {title} ({category})"
    return Prompt(text=text, meta={"label": label, "title": title, "product_id": title})


class ToyTask:
    """Four products, three real queries each; label 1 = the query is about the product."""

    def generator_train(self) -> list[Sample]:
        out = []
        for title, cat in PRODUCTS:
            out += [Sample(q, prompt(title, cat, 1), 1) for q in QUERIES[title]]
        return out

    def classifier_train(self) -> list[Sample]:
        return self.generator_train()

    def augment_prompts(self, round: int) -> Sequence[Prompt]:
        return [prompt(t, c, 1) for t, c in PRODUCTS]

    def synthetic_samples(self, rollout: Rollout) -> list[Sample]:
        return rollout.samples()

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> Sequence[Prompt]:
        picks = rng.integers(0, len(PRODUCTS), size=batch_size)
        return [prompt(*PRODUCTS[i], int(rng.integers(0, 2))) for i in picks]

    def texts(self) -> list[str]:
        out = [p.text for p in self.augment_prompts(0)] + [
            p.text for p in [prompt(t, c, 0) for t, c in PRODUCTS]
        ]
        return out + [s.text for s in self.generator_train()]

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        return {}


class LengthClassifier:
    """A fixed 'classifier' whose loss is the response's word count (deterministic, testable)."""

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        return {}

    def predict_proba(self, samples: Sequence[Sample]) -> torch.Tensor:
        p = torch.tensor([min(len(s.text.split()) / 10, 1.0) for s in samples])
        return torch.stack([1 - p, p], dim=-1)

    def loss(self, samples: Sequence[Sample]) -> torch.Tensor:
        return torch.tensor([float(len(s.text.split())) for s in samples])

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state) -> None:
        pass


def make_generator(run_dir, task, **keys) -> Seq2SeqGenerator:
    config = Seq2SeqConfig(**{"max_new_tokens": 8, "epochs": 20, "lr": 3e-3, **keys})
    return build_seq2seq(config, BuildContext(run_dir=run_dir, seed=0, device="cpu", task=task))
