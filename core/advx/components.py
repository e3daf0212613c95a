"""What each kind of component must do: structural Protocols, no base classes.

A plugin's factory returns any object with these methods. The core only ever calls what is
written here, so a generator, classifier, reward or optimizer from one plugin works with the
others. Shapes follow :mod:`advx.rollout`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

from advx.rollout import Prompt, Rewards, Rollout, Sample, SequenceNLL

__all__ = [
    "BuildContext",
    "Classifier",
    "Components",
    "Generator",
    "Logger",
    "Optimizer",
    "PolicyOutputs",
    "Reward",
    "StepContext",
    "Task",
]


@dataclass
class PolicyOutputs:
    """Teacher-forced outputs of the current policy on a rollout's responses (with grad).

    Attributes:
        logprobs: ``[B, T]`` log π_θ(a_t | s_t) of the rollout's tokens.
        entropy: ``[B, T]`` entropy of π_θ(· | s_t).
        values: ``[B, T]`` value-head estimates, or None when the generator has no value head.
    """

    logprobs: Tensor
    entropy: Tensor
    values: Tensor | None = None


@runtime_checkable
class Generator(Protocol):
    """A policy over token sequences (FLAN-T5, a causal LM, SeqGAN's LSTM, ...)."""

    def sft(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Supervised (MLE) training on ``sample.prompt -> sample.text`` pairs for the
        generator's configured epochs; returns final metrics (e.g. ``sft/loss``)."""
        ...

    def nll(self, samples: Sequence[Sample], temperature: float = 1.0) -> SequenceNLL:
        """Teacher-forced NLL of each ``sample.text`` given ``sample.prompt``: ``total [N]``
        summed over its tokens (with grad) and ``tokens [N]`` counted in the generator's own
        tokenizer (EOS included). ``temperature`` scores the tempered policy softmax(logits/τ),
        as NLL-test at a sampling temperature needs; 1.0 is the policy itself."""
        ...

    def sample(self, prompts: Sequence[Prompt], n: int = 1, temperature: float = 1.0) -> Rollout:
        """Sample ``n`` responses per prompt (no grad, KV cache). Rows are prompt-major:
        row ``i*n + j`` is the j-th sample of prompt i and ``group_ids[i*n + j] == i``."""
        ...

    def complete(self, rollout: Rollout, rows: Tensor, prefix_lengths: Tensor) -> Rollout:
        """Monte-Carlo continuations, batched: for each m, keep the first
        ``prefix_lengths[m]`` tokens of ``rollout.response_ids[rows[m]]`` and sample the rest.
        ``rows``, ``prefix_lengths``: ``[M]``. Returns an ``M``-row Rollout (no grad)."""
        ...

    def policy_outputs(self, rollout: Rollout) -> PolicyOutputs:
        """Teacher-forced log-probs, entropy (and values) of ``rollout``'s tokens, with grad."""
        ...

    def reference(self) -> Generator:
        """A frozen copy of the current weights (π_ref / π_FT), taken when first asked for."""
        ...

    def parameters(self) -> Any:
        """The trainable parameters (what an optimizer's ``torch.optim`` instance steps)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def save(self, path: Path) -> None:
        """Write weights, config and tokenizer so the model reloads offline from ``path``."""
        ...


@runtime_checkable
class Classifier(Protocol):
    """Relevance classifier, SeqGAN discriminator or AdaGRPO ranker."""

    def fit(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Train on labelled samples (the classifier holds out its own validation split)."""
        ...

    def predict_proba(self, samples: Sequence[Sample]) -> Tensor:
        """``[N, C]`` class probabilities (no grad)."""
        ...

    def loss(self, samples: Sequence[Sample]) -> Tensor:
        """``[N]`` per-example cross-entropy against ``sample.label`` (L_cls), no grad."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class StepContext:
    """What a reward or optimizer may consult besides the rollout."""

    task: Task
    generator: Generator
    classifier: Classifier | None
    reference: Generator | None
    round: int
    step: int
    rng: np.random.Generator


@runtime_checkable
class Reward(Protocol):
    """Maps a rollout to per-token rewards and named terms."""

    def __call__(self, rollout: Rollout, ctx: StepContext) -> Rewards: ...


@runtime_checkable
class Optimizer(Protocol):
    """One improvement step of the generator from a rollout and its rewards."""

    def update(self, rollout: Rollout, rewards: Rewards, ctx: StepContext) -> dict[str, float]:
        """Update ``ctx.generator`` in place; return diagnostics (loss, approx-KL, ...)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class Task(Protocol):
    """Datasets, splits, prompts and the evaluation of one line of work."""

    def generator_train(self) -> Sequence[Sample]:
        """SFT / MLE pre-training pairs for the generator."""
        ...

    def classifier_train(self) -> Sequence[Sample]:
        """Labelled real data for the classifier (warm products, real sequences, ...)."""
        ...

    def augment_prompts(self, round: int) -> Sequence[Prompt]:
        """Prompts the generator writes synthetic data for in the augment phase."""
        ...

    def synthetic_samples(self, rollout: Rollout) -> list[Sample]:
        """Labelled classifier samples made from generated text (queries, fakes)."""
        ...

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> Sequence[Prompt]:
        """A batch of prompts for one improvement step."""
        ...

    def texts(self) -> Sequence[str]:
        """Every text a tokenizer may be trained on. Must exclude held-out targets."""
        ...

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        """Metrics at ``stage`` ('pretrain', 'round-1', ...), e.g. ``cold/pr_auc``."""
        ...


@runtime_checkable
class Logger(Protocol):
    """Receives metrics as the run produces them (console, CSV, TensorBoard, ...)."""

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


@dataclass
class BuildContext:
    """What a factory may use to build its component.

    Components are built in the order task, generator, classifier, reward, optimizer,
    loggers; each factory sees the ones built before it.
    """

    run_dir: Path
    seed: int
    device: str
    task: Task | None = None
    generator: Generator | None = None
    classifier: Classifier | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Components:
    """The built components of a run (any but the task may be absent)."""

    task: Task
    generator: Generator | None = None
    classifier: Classifier | None = None
    reward: Reward | None = None
    optimizer: Optimizer | None = None
    loggers: list[Logger] = field(default_factory=list)
