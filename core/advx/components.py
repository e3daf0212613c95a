"""What each kind of component must do: structural Protocols, no base classes.

Two layers:

* **Base protocols** (``Generator``, ``Classifier``, ``Reward``, ``Optimizer``, ``Task``,
  ``Logger``): what the core itself calls. :func:`advx.build.build_components` checks every
  built component against its kind's protocol and raises a :class:`PluginError` naming the
  missing methods.
* **Capabilities** (``SupportsCompletion``, ``HasValueHead``, ``SupportsBeamSearch``,
  ``ItemScorer``, ``ItemCatalogue``, ``SupportsAugmentation``): what only some consumers call
  (the MC-rollout reward, PPO, AdaGRPO, ...). A consumer's factory declares what it needs with
  :func:`require`, so a missing method fails at build time, naming the component, the methods
  and who needs them, instead of an ``AttributeError`` in round 3.

A plugin's factory returns any object with these methods (no base class to inherit), so a
generator, classifier, reward or optimizer from one plugin works with the others. Shapes
follow :mod:`advx.rollout`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from torch import Tensor

from advx.rollout import Prompt, Rewards, Rollout, Sample, SequenceNLL

__all__ = [
    "BASE_PROTOCOLS",
    "CAPABILITIES",
    "BuildContext",
    "Classifier",
    "Components",
    "Generator",
    "HasInputFields",
    "HasLabelNames",
    "HasValueHead",
    "ItemCatalogue",
    "ItemScorer",
    "Logger",
    "Optimizer",
    "PolicyOutputs",
    "RendersPrompts",
    "RequestsLabels",
    "Reward",
    "StepContext",
    "SupportsAugmentation",
    "SupportsBeamSearch",
    "SupportsCompletion",
    "SupportsExport",
    "Task",
    "missing_members",
    "require",
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
    """A policy over token sequences (FLAN-T5, a causal LM, SeqGAN's LSTM, ...).

    Only what the loop, the tasks' evaluation and every optimizer call. Continuations
    (``complete``), a value head and beam search are capabilities, below."""

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
    """Datasets, splits, prompts and the evaluation of one line of work.

    The loop calls each method only in the phases that need it (``generator_train`` in the
    generator's pre-training, ``classifier_train`` in the classifier's and in classify,
    ``rl_prompts`` in improve, ``evaluate`` in evaluate), so the build step requires of a task
    exactly the methods of the phases its recipe runs (``advx.build.check_task``): a task for
    an evaluation-only recipe needs only ``evaluate``. The augment phase's
    ``augment_prompts``/``synthetic_samples`` are the capability :class:`SupportsAugmentation`,
    required likewise only when that phase runs."""

    def generator_train(self) -> Sequence[Sample]:
        """SFT / MLE pre-training pairs for the generator."""
        ...

    def classifier_train(self) -> Sequence[Sample]:
        """Labelled real data for the classifier (warm products, real sequences, ...)."""
        ...

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> Sequence[Prompt]:
        """A batch of prompts for one improvement step."""
        ...

    def texts(self) -> Sequence[str]:
        """Every text a tokenizer may be trained on. Must exclude held-out targets.

        Not called by the loop but by the generator and classifier factories that train a
        tokenizer (seq2seq, causal, LSTM, CNN, encoder classifier): every task must answer
        (an empty list when it has nothing to train on)."""
        ...

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        """Metrics at ``stage`` ('pretrain', 'round-1', ...), e.g. ``cold/pr_auc``."""
        ...


@runtime_checkable
class Logger(Protocol):
    """Receives metrics as the run produces them (console, CSV, TensorBoard, ...)."""

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def close(self) -> None: ...


if TYPE_CHECKING:  # only for BuildContext.registry's annotation
    from advx.plugins import Registry


# ------------------------------------------------------------------------- capabilities
# Methods only some consumers call. A consumer declares what it needs in its factory with
# ``require(component, Capability, role=ctx.describe(kind), needed_by=...)``.


@runtime_checkable
class SupportsCompletion(Protocol):
    """A generator that continues partial responses. Needed by reward ``mc_rollout``."""

    def complete(self, rollout: Rollout, rows: Tensor, prefix_lengths: Tensor) -> Rollout:
        """Monte-Carlo continuations, batched: for each m, keep the first
        ``prefix_lengths[m]`` tokens of ``rollout.response_ids[rows[m]]`` and sample the rest.
        ``rows``, ``prefix_lengths``: ``[M]``. Returns an ``M``-row Rollout (no grad)."""
        ...


@runtime_checkable
class HasValueHead(Protocol):
    """A generator with a critic: ``policy_outputs(...).values`` is filled, and
    ``value_parameters`` are stepped with ``optimizer.value_lr``. Needed by optimizer ``ppo``
    when ``vf_coef > 0``."""

    def value_parameters(self) -> Any:
        """The value head's parameters (a subset of ``parameters()``)."""
        ...


@runtime_checkable
class SupportsBeamSearch(Protocol):
    """A generator that returns its ``k`` most likely responses. Used, when present, by task
    ``next_item``'s evaluation (otherwise the ``2k`` most likely samples are ranked)."""

    def beam_search(self, prompts: Sequence[Prompt], k: int,
                    allowed: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Per prompt, up to ``k`` ``(text, log-prob)`` pairs, best first; with ``allowed``,
        only responses among those texts (constrained decoding, e.g. valid item codes)."""
        ...


@runtime_checkable
class ItemScorer(Protocol):
    """A classifier that scores (history, item) pairs. Needed by reward ``ranker_score``
    and optimizer ``adagrpo``."""

    def score(self, histories: Sequence[Sequence[str]], items: Sequence[str]) -> Tensor:
        """``[N]`` raw scores of ``items[n]`` after ``histories[n]`` (no grad)."""
        ...

    def score_all(self, histories: Sequence[Sequence[str]]) -> Tensor:
        """``[N, num_items]`` scores of every catalogue item (column i = ``task.items[i]``)."""
        ...


@runtime_checkable
class ItemCatalogue(Protocol):
    """A task whose texts name catalogue items. Needed by classifier ``ranker``, reward
    ``ranker_score`` and optimizer ``adagrpo``."""

    items: Sequence[str]
    """Every catalogue item id, in a fixed order."""
    index: Mapping[str, int]
    """``items[index[item]] == item``."""

    def item_of(self, text: str) -> str | None:
        """The catalogue item a (generated) text names, or None (a hallucination)."""
        ...


@runtime_checkable
class SupportsAugmentation(Protocol):
    """A task that turns generated text into classifier data. Needed by the loop's augment
    phase (``loop.augment: true`` with a generator); checked at build time then only."""

    def augment_prompts(self, round: int) -> Sequence[Prompt]:
        """Prompts the generator writes synthetic data for in the augment phase."""
        ...

    def synthetic_samples(self, rollout: Rollout) -> list[Sample]:
        """Labelled classifier samples made from generated text (queries, fakes)."""
        ...


@runtime_checkable
class SupportsExport(Protocol):
    """A generator or classifier that writes itself in a standard, advx-free form. Needed by
    ``advx export``: a Hugging Face directory (``save_pretrained``: safetensors, config,
    tokenizer) for a standard ``transformers`` architecture, else safetensors weights and a
    JSON config documented in docs/using-models.md."""

    def export(self, path: Path) -> None:
        """Create the folder ``path`` and write the component into it."""
        ...


@runtime_checkable
class RendersPrompts(Protocol):
    """A task that renders prompts from records a user brings (``advx generate``)."""

    def prompts_from_records(self, records: Sequence[Mapping[str, Any]],
                             source: str) -> list[Prompt]:
        """Prompts from user records (e.g. product fields); errors name ``source`` and row."""
        ...

    def cold_prompts(self) -> list[Prompt]:
        """The prompts of the task's cold-start items (``advx generate --split cold``)."""
        ...


@runtime_checkable
class HasLabelNames(Protocol):
    """A task whose classes have names (columns ``p_<name>`` of generate/predict)."""

    label_names: Sequence[str]


@runtime_checkable
class RequestsLabels(Protocol):
    """A task whose prompts ask for a label: the generator is then a class-conditional model
    whose own label posterior can rank its samples (``loop.augment_candidates`` > 1,
    :mod:`advx.label_specific`)."""

    label_names: Sequence[str]

    def requested_label(self, prompt: Prompt) -> int:
        """The class index ``prompt`` asks the generator to write for."""
        ...

    def relabel(self, prompt: Prompt, label: int) -> Prompt:
        """``prompt`` asking for ``label`` instead, everything else unchanged."""
        ...


@runtime_checkable
class HasInputFields(Protocol):
    """A classifier whose input combines the text with named fields (``advx predict``)."""

    def input_fields(self) -> list[str]:
        """The fields its input needs besides the text, e.g. ``["title"]``."""
        ...


BASE_PROTOCOLS: dict[str, type] = {
    "task": Task,
    "generator": Generator,
    "classifier": Classifier,
    "reward": Reward,
    "optimizer": Optimizer,
    "logger": Logger,
}
"""The protocol each kind's components must satisfy (checked after every factory call)."""

CAPABILITIES: tuple[type, ...] = (
    SupportsCompletion,
    HasValueHead,
    SupportsBeamSearch,
    ItemScorer,
    ItemCatalogue,
    SupportsAugmentation,
    SupportsExport,
    RendersPrompts,
    HasLabelNames,
    RequestsLabels,
    HasInputFields,
)


def _protocol_members(protocol: type) -> list[str]:
    """The attributes and methods a Protocol declares (``__call__`` included), in order.

    Hand-written: ``typing.get_protocol_members`` arrives only with Python 3.13."""
    members: list[str] = []
    for base in reversed(protocol.__mro__):
        if base in (object, Protocol) or not getattr(base, "_is_protocol", False):
            continue
        names = [*inspect.get_annotations(base), *base.__dict__]
        for name in names:
            public = not name.startswith("_") or name == "__call__"
            if public and name not in members:
                members.append(name)
    return members


def missing_members(component: object, protocol: type) -> list[str]:
    """The members of ``protocol`` that ``component`` lacks (a method must be callable)."""
    missing = []
    for name in _protocol_members(protocol):
        declared = getattr(protocol, name, None)
        value = getattr(component, name, None)
        if not hasattr(component, name) or (callable(declared) and not callable(value)):
            missing.append(name)
    return missing


def require(component: object, protocol: type, *, role: str, needed_by: str) -> None:
    """Raise :class:`PluginError` unless ``component`` has every member of ``protocol``.

    Args:
        role: the component, as ``BuildContext.describe`` writes it (``"generator 'lstm'"``).
        needed_by: who calls the methods and why (``"reward 'mc_rollout'"``).
    """
    from advx.errors import PluginError  # imported here: keeps this module's imports minimal

    missing = missing_members(component, protocol)
    if not missing:
        return
    methods = ", ".join(f"{m}()" if callable(getattr(protocol, m, None)) else m for m in missing)
    raise PluginError(
        f"{role} ({type(component).__name__}) lacks {methods}, which {needed_by} needs "
        f"(capability {protocol.__name__}, see docs/writing-plugins.md#capabilities). "
        f"Pick a {role.split()[0]} that implements it, or implement it in the plugin."
    )


@dataclass
class BuildContext:
    """What a factory may use to build its component.

    Components are built in the order task, generator, classifier, reward, optimizer,
    loggers; each factory sees the ones built before it. ``names`` holds each built
    component's registered name (for messages, see :meth:`describe`); ``registry`` is the
    registry the recipe was validated against, so a wrapping component builds its inner one
    with :meth:`build` instead of reaching for the process-wide plugin manager. ``quiet``:
    the user asked for no progress output (``advx run -q``), so factories show no bars.
    """

    run_dir: Path
    seed: int
    device: str
    task: Task | None = None
    generator: Generator | None = None
    classifier: Classifier | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    registry: Registry | None = None
    names: dict[str, str] = field(default_factory=dict)
    quiet: bool = False
    loop: Any = None
    """The run's ``advx.loop.LoopConfig`` (None outside a run): e.g. the total improvement
    steps a learning-rate schedule spans (:mod:`advx.schedules`)."""
    precision: str = "fp32"
    """The recipe's ``precision`` (``fp32``, ``bf16``, ``fp16``; see :mod:`advx.accel`)."""
    accelerator: Any = None
    """The run's ``accelerate.Accelerator`` (None for a plain fp32 run); the builder puts the
    generator's and classifier's modules under its autocast once they are built."""

    def describe(self, kind: str) -> str:
        """``"generator 'lstm'"``: a built component's kind and registered name."""
        name = self.names.get(kind)
        return f"{kind} {name!r}" if name else kind

    def build(self, kind: str, block: Mapping[str, Any], *, path: str | None = None) -> Any:
        """Build one more component of ``kind`` from a recipe-style ``block`` (``{name: ...,
        key: value}``), validated like a recipe block (``path`` names it in messages, e.g.
        ``reward.wrapped``) and checked against its kind's protocol; the new component sees
        this context. For wrappers such as the MC-rollout reward around a sequence reward."""
        from advx.build import build_block  # the builder needs the recipe parser: import late

        return build_block(self, kind, block, path=path or kind)


@dataclass
class Components:
    """The built components of a run (any but the task may be absent)."""

    task: Task
    generator: Generator | None = None
    classifier: Classifier | None = None
    reward: Reward | None = None
    optimizer: Optimizer | None = None
    loggers: list[Logger] = field(default_factory=list)
