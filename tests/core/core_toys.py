"""Tiny pure-torch components for exercising the loop (no model, no dataset).

Vocabulary ``a b c d e``; responses have a fixed length ``T``; the task's "real" texts are
mostly ``a``. The generator is a learnable unigram distribution, the classifier a logistic
regression on token counts (real = 1, generated = 0), the reward the classifier's P(real)
minus a KL term, and the optimizer REINFORCE with a moving-average baseline. Every call
counts itself in ``CALLS`` so tests can assert which phases ran.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import advx
import numpy as np
import torch
from advx import BuildContext, Components, PolicyOutputs, Prompt, Rewards, Rollout, Sample
from advx.components import StepContext
from advx.numerics import guarded_step
from torch import nn

VOCAB = ["a", "b", "c", "d", "e"]
CALLS: Counter[str] = Counter()
ORDER: list[str] = []


def _called(name: str) -> None:
    CALLS[name] += 1
    ORDER.append(name)


def _ids(text: str) -> list[int]:
    return [VOCAB.index(tok) for tok in text.split()]


@dataclass
class ToyTaskConfig:
    n_real: int = 24
    length: int = 4
    n_augment: int = 8
    eval_samples: int = 16


class ToyTask:
    def __init__(self, config: ToyTaskConfig, ctx: BuildContext) -> None:
        self.config = config
        gen = np.random.default_rng(ctx.seed + 1)
        probs = [0.6, 0.1, 0.1, 0.1, 0.1]
        self.real = [
            " ".join(VOCAB[i] for i in gen.choice(5, size=config.length, p=probs))
            for _ in range(config.n_real)
        ]

    def generator_train(self) -> Sequence[Sample]:
        _called("task.generator_train")
        return [Sample(text=t, prompt=Prompt("")) for t in self.real]

    def classifier_train(self) -> Sequence[Sample]:
        _called("task.classifier_train")
        return [Sample(text=t, prompt=Prompt(""), label=1) for t in self.real]

    def augment_prompts(self, round: int) -> Sequence[Prompt]:
        _called("task.augment_prompts")
        return [Prompt("", {"label": 0}) for _ in range(self.config.n_augment)]

    def synthetic_samples(self, rollout: Rollout) -> list[Sample]:
        _called("task.synthetic_samples")
        return [s.with_label(0) for s in rollout.samples()]

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> Sequence[Prompt]:
        _called("task.rl_prompts")
        return [Prompt("", {"label": int(rng.integers(0, 2))}) for _ in range(batch_size)]

    def texts(self) -> Sequence[str]:
        return list(self.real)

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        _called("task.evaluate")
        metrics: dict[str, float] = {}
        if components.generator is not None:
            rollout = components.generator.sample([Prompt("")] * self.config.eval_samples)
            metrics["eval/frac_a"] = float((rollout.response_ids == 0).float().mean())
        if components.classifier is not None:
            real = self.classifier_train()
            metrics["eval/p_real"] = float(components.classifier.predict_proba(real)[:, 1].mean())
        return metrics


class _Unigram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(len(VOCAB)))


@dataclass
class ToyGeneratorConfig:
    length: int = 4
    sft_steps: int = 20
    lr: float = 0.1


class ToyGenerator:
    def __init__(self, config: ToyGeneratorConfig, ctx: BuildContext) -> None:
        self.config = config
        self.model = _Unigram()
        with torch.no_grad():
            self.model.logits.normal_(0.0, 0.1)  # consumes torch RNG: seeding must cover it

    def _logp(self) -> torch.Tensor:
        return torch.log_softmax(self.model.logits, -1)

    def sft(self, samples: Sequence[Sample]) -> dict[str, float]:
        _called("generator.sft")
        opt = torch.optim.SGD(self.model.parameters(), lr=self.config.lr)
        loss = torch.tensor(0.0)
        for _ in range(self.config.sft_steps):
            loss = self.nll(samples).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"sft/loss": float(loss.detach())}

    def nll(self, samples: Sequence[Sample]) -> torch.Tensor:
        ids = torch.tensor([_ids(s.text) for s in samples])
        return -self._logp()[ids].sum(-1)

    def sample(self, prompts: Sequence[Prompt], n: int = 1, temperature: float = 1.0) -> Rollout:
        _called("generator.sample")
        rows = [p for p in prompts for _ in range(n)]
        with torch.no_grad():
            probs = torch.softmax(self.model.logits / temperature, -1)
            ids = torch.multinomial(probs.expand(len(rows), -1), self.config.length, True)
            logprobs = self._logp()[ids]
        return Rollout(
            prompts=rows,
            prompt_ids=torch.zeros(len(rows), 1, dtype=torch.long),
            prompt_mask=torch.ones(len(rows), 1, dtype=torch.long),
            response_ids=ids,
            response_mask=torch.ones_like(ids),
            logprobs=logprobs,
            texts=[" ".join(VOCAB[i] for i in row) for row in ids.tolist()],
            group_ids=torch.arange(len(prompts)).repeat_interleave(n),
        )

    def policy_outputs(self, rollout: Rollout) -> PolicyOutputs:
        _called("generator.policy_outputs")
        logp = self._logp()
        entropy = -(logp.exp() * logp).sum().expand_as(rollout.logprobs)
        return PolicyOutputs(logprobs=logp[rollout.response_ids], entropy=entropy)

    def reference(self) -> ToyGenerator:
        _called("generator.reference")
        ref = copy.deepcopy(self)
        ref.model.requires_grad_(False)
        return ref

    def parameters(self) -> Any:
        return self.model.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state)

    def save(self, path: Path) -> None:
        torch.save(self.model.state_dict(), Path(path) / "toy.pt")


@dataclass
class ToyClassifierConfig:
    """``loss_scale`` multiplies the reported loss (a finite blow-up, for the warning test)."""

    steps: int = 30
    lr: float = 0.5
    loss_scale: float = 1.0


class ToyClassifier:
    def __init__(self, config: ToyClassifierConfig, ctx: BuildContext) -> None:
        self.config = config
        self.linear = nn.Linear(len(VOCAB), 2)
        self.fits = 0

    def _features(self, samples: Sequence[Sample]) -> torch.Tensor:
        counts = torch.zeros(len(samples), len(VOCAB))
        for row, sample in enumerate(samples):
            for i in _ids(sample.text):
                counts[row, i] += 1
        return counts

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        _called("classifier.fit")
        self.fits += 1
        x = self._features(samples)
        y = torch.tensor([s.label for s in samples])
        opt = torch.optim.SGD(self.linear.parameters(), lr=self.config.lr)
        loss = torch.tensor(0.0)
        for _ in range(self.config.steps):
            loss = nn.functional.cross_entropy(self.linear(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {"loss": float(loss.detach()) * self.config.loss_scale, "n": float(len(samples))}

    def predict_proba(self, samples: Sequence[Sample]) -> torch.Tensor:
        with torch.no_grad():
            return torch.softmax(self.linear(self._features(samples)), -1)

    def loss(self, samples: Sequence[Sample]) -> torch.Tensor:
        y = torch.tensor([s.label for s in samples])
        with torch.no_grad():
            return nn.functional.cross_entropy(
                self.linear(self._features(samples)), y, reduction="none"
            )

    def state_dict(self) -> dict[str, Any]:
        return {"linear": self.linear.state_dict(), "fits": self.fits}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.linear.load_state_dict(state["linear"])
        self.fits = state["fits"]


@dataclass
class ToyRewardConfig:
    """``nan_round``/``nan_step``: make the ``kl`` term NaN at that round and step (0: never)."""

    beta: float = 0.1
    nan_round: int = 0
    nan_step: int = 0


class ToyReward:
    def __init__(self, config: ToyRewardConfig, ctx: BuildContext) -> None:
        if config.beta < 0:  # a value its factory rejects at build time
            raise advx.ConfigError(f"reward.beta: expected a number >= 0, got {config.beta}")
        self.config = config

    def __call__(self, rollout: Rollout, ctx: StepContext) -> Rewards:
        _called("reward")
        p_real = ctx.classifier.predict_proba(rollout.samples())[:, 1]
        kl = torch.zeros(rollout.batch_size)
        if rollout.ref_logprobs is not None:
            _called("reward.saw_ref_logprobs")
            kl = (rollout.logprobs - rollout.ref_logprobs).sum(-1)
        if (ctx.round, ctx.step) == (self.config.nan_round, self.config.nan_step):
            kl = torch.full_like(kl, float("nan"))
        return Rewards.at_end(p_real - self.config.beta * kl, rollout, disc_prob=p_real, kl=kl)


@dataclass
class ToyOptimizerConfig:
    """``inf_loss_round``/``inf_loss_step``: the loss is +inf at that round and step, which
    ``guarded_step`` refuses to apply (0: never)."""

    lr: float = 0.2
    momentum: float = 0.9
    inf_loss_round: int = 0
    inf_loss_step: int = 0


class ToyReinforce:
    def __init__(self, config: ToyOptimizerConfig, ctx: BuildContext) -> None:
        self.torch_opt = torch.optim.Adam(ctx.generator.parameters(), lr=config.lr)
        self.config = config
        self.baseline = 0.0

    def update(self, rollout: Rollout, rewards: Rewards, ctx: StepContext) -> dict[str, float]:
        _called("optimizer.update")
        logprobs = ctx.generator.policy_outputs(rollout).logprobs.sum(-1)
        advantage = rewards.total - self.baseline
        loss = -(advantage * logprobs).mean()
        if (ctx.round, ctx.step) == (self.config.inf_loss_round, self.config.inf_loss_step):
            loss = loss * float("inf")
        self.torch_opt.zero_grad()
        loss.backward()
        guarded_step(self.torch_opt, ctx.generator.parameters(), loss=loss, what="toy")
        m = self.config.momentum
        self.baseline = m * self.baseline + (1 - m) * float(rewards.total.mean())
        return {"loss": float(loss.detach()), "baseline": self.baseline}

    def state_dict(self) -> dict[str, Any]:
        return {"torch": self.torch_opt.state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.torch_opt.load_state_dict(state["torch"])
        self.baseline = state["baseline"]


@dataclass
class ToyLoggerConfig:
    tag: str = "toy"


class ToyLogger:
    """Keeps every record; RECORDS lets a test read what a logger received."""

    RECORDS: ClassVar[list[tuple[int, dict[str, Any]]]] = []

    def __init__(self, config: ToyLoggerConfig, ctx: BuildContext) -> None:
        if not config.tag:  # a value its factory rejects at build time
            raise advx.ConfigError("loggers.0.tag: expected a non-empty name")
        self.closed = False

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        ToyLogger.RECORDS.append((step, dict(metrics)))

    def close(self) -> None:
        _called("logger.close")


class ToyPlugin:
    """Registers the toy components through the real hooks."""

    @advx.hookimpl
    def advx_register_tasks(self, register):
        register("toy_task", ToyTask, ToyTaskConfig)

    @advx.hookimpl
    def advx_register_generators(self, register):
        register("toy_unigram", ToyGenerator, ToyGeneratorConfig)

    @advx.hookimpl
    def advx_register_classifiers(self, register):
        register("toy_logreg", ToyClassifier, ToyClassifierConfig)

    @advx.hookimpl
    def advx_register_rewards(self, register):
        register("toy_disc", ToyReward, ToyRewardConfig)

    @advx.hookimpl
    def advx_register_optimizers(self, register):
        register("toy_reinforce", ToyReinforce, ToyOptimizerConfig)

    @advx.hookimpl
    def advx_register_loggers(self, register):
        register("toy_memory", ToyLogger, ToyLoggerConfig)


TOY_RECIPE = """\
name: toy
description: toy adversarial loop for the core tests
seed: 3
task: {name: toy_task}
generator: {name: toy_unigram, length: 4}
classifier: {name: toy_logreg}
reward: {name: toy_disc, beta: 0.05}
optimizer: {name: toy_reinforce, lr: 0.2}
loggers: [{name: toy_memory}]
loop:
  rounds: 3
  rl_steps: 3
  batch_size: 4
  samples_per_prompt: 2
  monitor: eval/p_real
"""
