"""The experiment loop, generic over the three lines of work.

    seed; build task → generator → classifier → reward → optimizer → loggers   (advx.build)
    pretrain:  generator.sft(task.generator_train()); classifier.fit(task.classifier_train())
               then pretrain_d_steps × (augment, classify)      # SeqGAN discriminator pre-training
    reference = generator.reference()                            # if use_reference
    evaluate:  task.evaluate(components, "pretrain")             → round 0
    for round in 1..R:
        repeat d_steps:
            augment:   pool (+)= task.synthetic_samples(generator.sample(task.augment_prompts))
            classify:  classifier.fit(task.classifier_train() + pool)
        improve:   repeat S: prompts → generator.sample → ref log-probs → reward → optimizer.update
        (improve_first: the improvement steps run before augment/classify, as in SeqGAN)
        evaluate  (round 0, every eval_every-th round and the last; own RNG streams)
        record    (one round record through emit: metrics.jsonl, loggers, hooks, progress)
        checkpoint (round 0, every checkpoint_every-th round and the last)

Every record the loop produces, a ``step`` record per improvement step and a ``round`` record
per round, takes one path, :meth:`Experiment.emit`, to every sink in the same form: the run
folder's ``metrics.jsonl``, each logger component, and the lifecycle hooks (through which the
progress display and a sweep's pruner receive them).

Every phase can be switched off in the recipe's ``loop:`` block; a phase whose component is
absent from the recipe is skipped and listed in ``summary.json`` under ``skipped_phases``.
"""

from __future__ import annotations

import errno
import logging
import math
import random
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np
import torch

from advx.choices import Choice
from advx.components import Components, Generator, StepContext
from advx.distributed import (
    any_rank,
    mean_metrics,
    rank_seed,
    sample_sharded,
    shard,
    sharded_sampling,
)
from advx.errors import AdvxError, ConfigError, NonFiniteError
from advx.label_specific import most_label_specific
from advx.numerics import check_finite_terms
from advx.rollout import Rewards, Rollout, Sample
from advx.run_info import RunInfo
from advx.rundir import RunDir, jsonable

__all__ = [
    "BLOWUP_LIMIT",
    "RESUMABLE_KEYS",
    "Experiment",
    "LoopConfig",
    "Phases",
    "evaluation_rng",
    "rng_state",
    "seed_everything",
]

log = logging.getLogger("advx")

T = TypeVar("T")

BLOWUP_LIMIT = 1e6
"""An evaluation metric or a loss beyond this magnitude (or not finite) gets a warning."""

RESUMABLE_KEYS = (
    "description", "device", "loggers", "loop.rounds", "loop.eval_every",
    "loop.checkpoint_every", "loop.keep_checkpoints", "loop.keep_best", "loop.checkpoint",
    "loop.monitor",
    "loop.monitor_mode", "loop.save_samples", "loop.evaluate", "loop.on_nonfinite",
)
"""Recipe keys that may change on ``--resume``: none of them changes what the checkpoint
trained (evaluation draws from its own random streams, so even how often it runs is free).
Every other key is fixed by the checkpoint; see docs/reliability.md."""


class AugmentMode(Choice):
    """``loop.augment_mode``."""

    accumulate = "accumulate"
    replace = "replace"


class MonitorMode(Choice):
    """``loop.monitor_mode``."""

    max = "max"
    min = "min"


class OnNonFinite(Choice):
    """``loop.on_nonfinite``: what a NaN/inf reward, loss or gradient norm does."""

    stop = "stop"
    skip = "skip"


@dataclass
class LoopConfig:
    """The ``loop:`` block of a recipe.

    Attributes:
        rounds: number of rounds R after pre-training.
        pretrain_generator: run ``generator.sft`` on the task's generator data first.
        pretrain_classifier: fit the classifier on the task's real data first.
        augment: generate synthetic classifier data each round.
        augment_samples: samples per augment prompt.
        augment_mode: ``accumulate`` (D_N = D_{N-1} ∪ D_syn, the cold-start paper) or
            ``replace`` (fresh fakes every time, SeqGAN's discriminator).
        augment_min_label_p: keep a synthetic sample only when the current classifier gives
            its label at least this probability (round-trip consistency filtering, Alberti
            et al. ACL 2019): generated queries the classifier reads as the other label are
            label noise for its refit. 0 keeps every sample (the paper); 0.5 on two classes
            keeps those it agrees with. Needs a classifier.
        augment_candidates: k > 1 samples k candidates per augment sample and keeps the one
            the generator itself finds most specific to the requested label,
            argmax p(y | q, x) by Bayes over its label-conditioned prompts (GeDi's
            class-conditional discriminator as reranking; :mod:`advx.label_specific`).
            Needs a task whose prompts request a label (``RequestsLabels``). 1: no selection.
        classify: refit the classifier each round.
        d_steps: repetitions of (augment, classify) per round (SeqGAN's d-steps).
        rl_steps: improvement steps S per round (g-steps × batches).
        batch_size: prompts per improvement step.
        samples_per_prompt: samples per RL prompt (GRPO's group size G).
        temperature: sampling temperature for augment and RL rollouts.
        use_reference: freeze the post-pretraining generator as π_ref and fill
            ``rollout.ref_logprobs`` (needed for KL penalties).
        pretrain_d_steps: (augment, classify) repetitions after the generator's SFT and before
            round 1: SeqGAN's discriminator pre-training on real vs generated sequences.
        improve_first: run the improvement steps before augment/classify within a round
            (SeqGAN: g-step, then d-steps); default is the cold-start order.
        eval_every: evaluate every this many rounds (round 0 and the last are always evaluated).
        checkpoint: write ``checkpoints/round-<n>/`` (what ``--resume`` continues from).
        checkpoint_every: checkpoint every this many rounds (round 0 and the last always),
            independent of ``eval_every``.
        keep_checkpoints: keep the newest this many checkpoints (plus the best one by
            ``monitor`` when ``keep_best``); 0 keeps every checkpoint.
        keep_best: never prune the checkpoint of the best round by ``monitor`` (what
            ``advx export/eval/generate --round best`` and ``advx run --from RUN:best`` open);
            only checkpointed rounds can be kept, so the best is among them when
            ``checkpoint_every`` divides ``eval_every``.
        monitor: metric name whose best round is reported in ``summary.json`` as ``best``
            (e.g. ``valid/hr@10``) and whose checkpoint is never pruned (``keep_best``);
            empty means the final round only.
        monitor_mode: ``max`` or ``min`` for ``monitor``.
        evaluate: call ``task.evaluate`` at all (round 0 and every ``eval_every`` rounds).
        save_samples: write ``samples/round-<n>.jsonl`` (augment and improvement texts).
        on_nonfinite: what a NaN/inf reward term, loss or gradient norm does: ``stop`` the
            run (status ``failed``, exit code 2) or ``skip`` that update (counted as
            ``nonfinite/skipped`` in the round record).
    """

    rounds: int = 4
    pretrain_generator: bool = True
    pretrain_classifier: bool = True
    augment: bool = True
    augment_samples: int = 1
    augment_mode: AugmentMode = AugmentMode.accumulate
    augment_min_label_p: float = 0.0
    augment_candidates: int = 1
    classify: bool = True
    d_steps: int = 1
    rl_steps: int = 20
    batch_size: int = 16
    samples_per_prompt: int = 1
    temperature: float = 1.0
    use_reference: bool = True
    pretrain_d_steps: int = 0
    improve_first: bool = False
    eval_every: int = 1
    checkpoint: bool = True
    checkpoint_every: int = 1
    keep_checkpoints: int = 2
    keep_best: bool = True
    monitor: str = ""
    monitor_mode: MonitorMode = MonitorMode.max
    evaluate: bool = True
    save_samples: bool = True
    on_nonfinite: OnNonFinite = OnNonFinite.stop

    def __post_init__(self) -> None:
        # omegaconf builds this dataclass, so a bad value is reported before anything runs
        if isinstance(self.checkpoint_every, int) and self.checkpoint_every < 1:
            raise ConfigError(
                f"loop.checkpoint_every: expected an integer >= 1, got {self.checkpoint_every}"
            )
        if isinstance(self.augment_min_label_p, (int, float)) and \
                not 0.0 <= self.augment_min_label_p <= 1.0:
            raise ConfigError("loop.augment_min_label_p: expected a probability in [0, 1] "
                              f"(0 keeps every synthetic sample), got {self.augment_min_label_p}")
        if isinstance(self.augment_candidates, int) and self.augment_candidates < 1:
            raise ConfigError(f"loop.augment_candidates: expected an integer >= 1 (1: no "
                              f"selection), got {self.augment_candidates}")


@dataclass(frozen=True)
class Phases:
    """Which phases run: the recipe's switches, less those whose component is absent."""

    pretrain_generator: bool
    pretrain_classifier: bool
    augment: bool
    classify: bool
    improve: bool
    use_reference: bool
    evaluate: bool


def plan_phases(cfg: LoopConfig, present: Components | Collection[str]
                ) -> tuple[Phases, dict[str, str]]:
    """The phases to run, and the wanted ones skipped for a missing component (with why).

    ``present``: the built components, or the kinds a recipe has blocks for (the build step
    checks the task against the phases before the slow builds, with the same rules)."""
    if isinstance(present, Components):
        present = {kind for kind in ("task", "generator", "classifier", "reward", "optimizer")
                   if getattr(present, kind) is not None}
    rounds_or_pretrain_d = cfg.rounds > 0 or cfg.pretrain_d_steps > 0
    wanted: dict[str, tuple[bool, tuple[str, ...]]] = {
        "pretrain_generator": (cfg.pretrain_generator, ("task", "generator")),
        "pretrain_classifier": (cfg.pretrain_classifier, ("task", "classifier")),
        "augment": (cfg.augment and rounds_or_pretrain_d, ("task", "generator")),
        "classify": (cfg.classify and rounds_or_pretrain_d, ("task", "classifier")),
        "improve": (cfg.rl_steps > 0 and cfg.rounds > 0,
                    ("task", "generator", "reward", "optimizer")),
        "use_reference": (cfg.use_reference, ("generator",)),
        "evaluate": (cfg.evaluate, ("task",)),
    }
    skipped: dict[str, str] = {}
    on: dict[str, bool] = {}
    for phase, (want, needs) in wanted.items():
        missing = [kind for kind in needs if kind not in present]
        if want and missing:
            skipped[phase] = f"recipe has no {', '.join(missing)} block"
        on[phase] = bool(want) and not missing
    return Phases(**on), skipped


# ------------------------------------------------------------------------- seeding / RNG


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _global_rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_global_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Every random state the run draws from, for a checkpoint."""
    return {**_global_rng_state(), "loop": rng.bit_generator.state}


def set_rng_state(state: Mapping[str, Any], rng: np.random.Generator) -> None:
    _set_global_rng_state(state)
    rng.bit_generator.state = state["loop"]


_EVAL_STREAM = 0x65_76_61_6C  # "eval": keeps evaluation seeds apart from any training seed


@contextmanager
def evaluation_rng(seed: int, round: int) -> Iterator[None]:
    """Run the block on its own python/numpy/torch streams, seeded from (seed, round).

    The training streams are saved before and restored after, so how often and what is
    evaluated never changes training, and evaluating the same weights at the same round
    twice gives the same numbers.
    """
    saved = _global_rng_state()
    seed_everything(int(np.random.SeedSequence([seed, round, _EVAL_STREAM]).generate_state(1)[0]))
    try:
        yield
    finally:
        _set_global_rng_state(saved)


# ------------------------------------------------------------------------- records


def _namespaced(prefix: str, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Component metrics as returned; bare keys get the phase's prefix (``classify/loss``)."""
    return {(k if "/" in k else f"{prefix}/{k}"): v for k, v in (metrics or {}).items()}


_BOOKKEEPING = ("kind", "round", "step", "global_step", "evaluated")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    return None


@dataclass
class _Round:
    """What one round gathers before it is recorded, passed explicitly through its phases."""

    round: int
    started: float = field(default_factory=time.perf_counter)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    step_sums: dict[str, float] = field(default_factory=dict)
    step_counts: dict[str, int] = field(default_factory=dict)
    nonfinite_skipped: int = 0

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Add the block's wall time to ``time/<name>_s`` (a repeated phase sums)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            key = f"time/{name.replace(' ', '_')}_s"
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def add_step(self, metrics: Mapping[str, Any]) -> None:
        for key, value in metrics.items():
            number = _number(value)
            if key in _BOOKKEEPING or number is None or key.startswith("nonfinite/"):
                continue
            self.step_sums[key] = self.step_sums.get(key, 0.0) + number
            self.step_counts[key] = self.step_counts.get(key, 0) + 1

    def step_means(self) -> dict[str, float]:
        """The improve phase's means over the round's applied steps (same keys as a step)."""
        return {k: total / self.step_counts[k] for k, total in self.step_sums.items()}


@dataclass
class _State:
    """What a checkpoint holds besides the components: where the loop is."""

    round: int = 0
    global_step: int = 0
    pool: list[Sample] = field(default_factory=list)


RecordSink = Callable[[Mapping[str, Any]], None]
"""Anything that receives the loop's records: ``sink(record)``."""


# ------------------------------------------------------------------------- the loop


class Experiment:
    """One run of the loop over built components, writing into a :class:`RunDir`.

    ``hook`` is the plugin manager's hook relay (``pm.hook``); lifecycle hooks are called on it.
    """

    def __init__(
        self,
        components: Components,
        config: LoopConfig,
        run_dir: RunDir,
        info: RunInfo,
        hook: Any,
    ) -> None:
        self.c = components
        self.cfg = config
        self.run_dir = run_dir
        self.info = info
        self.hook = hook
        self.rng = np.random.default_rng(info.seed)
        self.state = _State()
        self.reference: Generator | None = None
        self.history: list[dict[str, Any]] = []
        self.eval_keys: set[str] = set()
        self.phases, self.skipped = plan_phases(config, components)
        self.warnings: list[str] = []
        self._warned_keys: set[str] = set()
        self.nonfinite_skipped = 0
        self.first_round = 0
        self._restored = False
        self.origin: dict[str, Any] | None = None
        """``{"run_dir", "round", "carried"}``: the checkpoint a ``--from`` run started from
        (advx.branch); kept in every checkpoint and written to summary.json as ``from``."""
        self.sinks: list[RecordSink] = [
            self.run_dir.append_metrics,
            *(self._logger_sink(logger) for logger in self.c.loggers),
            self._hook_sink,
        ]

    # ----------------------------------------------------------------- the event stream
    def emit(self, record: Mapping[str, Any]) -> None:
        """Send one record to every sink, in the same read-only form."""
        frozen = MappingProxyType(dict(record))
        for sink in self.sinks:
            sink(frozen)

    @staticmethod
    def _logger_sink(logger: Any) -> RecordSink:
        return lambda record: logger.log(record, int(record.get("global_step", 0)))

    def _hook_sink(self, record: Mapping[str, Any]) -> None:
        if record["kind"] == "step":
            self.hook.advx_on_step_end(
                run=self.info, round=record["round"], step=record["step"], metrics=record
            )
        elif record["kind"] == "round":
            self.hook.advx_on_round_end(run=self.info, round=record["round"], metrics=record)

    def _warn(self, message: str) -> None:
        log.warning(message)
        self.warnings.append(message)

    # ----------------------------------------------------------------- run
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Run (or, with ``resume``, continue after the last checkpoint) and return the summary.

        Whatever ends the run, ``summary.json`` says how: ``complete``, ``failed`` (with the
        error's type and message) or ``interrupted`` (Ctrl-C, SIGTERM, a pruned sweep trial).
        """
        if resume and not self._restored:
            self.restore()
        started = time.perf_counter()
        ended_by: BaseException | None = None
        self.hook.advx_on_run_start(run=self.info)
        try:
            try:
                first = self.first_round
                if first == 0:
                    self._pretrain()
                    first = 1
                for round in range(first, self.cfg.rounds + 1):
                    self._round(round)
                summary = self._finish("complete", started, None)
            except BaseException as exc:
                ended_by = exc
                status = "interrupted" if _is_interruption(exc) else "failed"
                self._finish(status, started, exc)
                user_error = _disk_error(exc, self.run_dir)
                if user_error is not None:
                    raise user_error from exc
                raise
            self.hook.advx_on_run_end(run=self.info, summary=summary)
        finally:
            self._close_loggers(ended_by)
        return summary

    def _close_loggers(self, ended_by: BaseException | None) -> None:
        """Close every logger; a failing close never hides the error that ended the run."""
        for logger in self.c.loggers:
            try:
                logger.close()
            except Exception as exc:
                if ended_by is None:
                    raise
                log.warning("closing logger %s failed: %s", type(logger).__name__, exc)

    def _finish(self, status: str, started: float, error: BaseException | None) -> dict[str, Any]:
        summary = self._summary(status, time.perf_counter() - started, error)
        try:
            self.run_dir.write_summary(summary)
        except OSError as exc:
            if error is None:
                raise
            # never hide the error that ended the run behind a second one (a full disk)
            log.warning("could not write %s: %s", self.run_dir.summary_path, exc)
        return summary

    def _pretrain(self) -> None:
        c, phases = self.c, self.phases
        current = _Round(0)
        if phases.pretrain_generator:
            with current.timed("pretrain generator"):
                current.metrics.update(_namespaced("sft", self._guard(
                    current, None, lambda: c.generator.sft(c.task.generator_train()))))
        if phases.pretrain_classifier:
            with current.timed("pretrain classifier"):
                current.metrics.update(_namespaced("classify", self._guard(
                    current, None, lambda: c.classifier.fit(c.task.classifier_train()))))
        for _ in range(self.cfg.pretrain_d_steps):
            self._d_step(current)
        if phases.use_reference:
            self.reference = c.generator.reference()
        self._end_round(current)

    def _round(self, round: int) -> None:
        current = _Round(round)
        if self.cfg.improve_first:
            self._improve(current)
        for _ in range(self.cfg.d_steps):
            self._d_step(current)
        if not self.cfg.improve_first:
            self._improve(current)
        self._end_round(current)

    # ----------------------------------------------------------------- non-finite numbers
    def _guard(self, current: _Round, step: int | None, update: Callable[[], T]) -> T | None:
        """Run one update; a :class:`NonFiniteError` stops the run or skips the update.

        The error is raised before the update touches the weights (``guarded_step``), so a
        skip leaves the weights as they were. Returns None for a skipped update.
        """
        try:
            return update()
        except NonFiniteError as exc:
            located = exc.at(current.round, step)
            if self.cfg.on_nonfinite == "stop":
                raise located from None
            current.nonfinite_skipped += 1
            self.nonfinite_skipped += 1
            where = f"round {current.round}" + (f", step {step}" if step else "")
            message = (f"skipped an update (loop.on_nonfinite=skip): {located.what} is "
                       f"{located.value} at {where}")
            log.warning(message)
            if len(self.warnings) < 20:  # the count is in the records; keep the summary short
                self.warnings.append(message)
            return None

    # ----------------------------------------------------------------- augment / classify
    def _d_step(self, current: _Round) -> None:
        """One (augment, classify) repetition."""
        if self.phases.augment:
            with current.timed("augment"):
                current.metrics.update(self._augment(current))
        if self.phases.classify:
            with current.timed("classify"):
                train = [*self.c.task.classifier_train(), *self.state.pool]
                fitted = self._guard(current, None, lambda: self.c.classifier.fit(train))
                current.metrics.update(_namespaced("classify", fitted))

    def _augment(self, current: _Round) -> dict[str, Any]:
        prompts = self.c.task.augment_prompts(current.round)
        # data-parallel: each rank writes its share of the prompts, every rank gets them all
        k = self.cfg.augment_candidates
        rollout = sample_sharded(self.c.generator, prompts, n=self.cfg.augment_samples * k,
                                 temperature=self.cfg.temperature)
        selected: dict[str, float] = {}
        if k > 1:
            rollout, posterior = most_label_specific(self.c.generator, self.c.task, rollout, k)
            finite = posterior[posterior.isfinite()]
            selected = {"augment/label_posterior": float(finite.exp().mean()) if len(finite)
                        else float("nan")}
        synthetic = list(self.c.task.synthetic_samples(rollout))
        generated = len(synthetic)
        if self.cfg.augment_min_label_p > 0:
            synthetic = self._consistent(synthetic)
        if self.cfg.augment_mode == "replace":
            self.state.pool = synthetic
        else:
            self.state.pool = [*self.state.pool, *synthetic]
        if self.cfg.save_samples:
            current.samples.extend({
                "phase": "augment",
                "round": current.round,
                "prompt": sample.prompt.text if sample.prompt is not None else None,
                "text": sample.text,
                "label": sample.label,
            } for sample in synthetic)
        kept = {"augment/generated": generated,
                "augment/kept_rate": len(synthetic) / max(generated, 1)} \
            if self.cfg.augment_min_label_p > 0 else {}
        return {"augment/new": len(synthetic), "augment/pool_size": len(self.state.pool),
                **kept, **selected}

    def _consistent(self, synthetic: list[Sample]) -> list[Sample]:
        """The samples whose label the current classifier gives probability ≥
        ``augment_min_label_p`` (``loop.augment_min_label_p``)."""
        if not synthetic:
            return synthetic
        unlabelled = next((i for i, s in enumerate(synthetic) if s.label is None), None)
        if unlabelled is not None:
            raise ConfigError(f"loop.augment_min_label_p: synthetic sample {unlabelled} of "
                              f"{type(self.c.task).__name__}.synthetic_samples has no label "
                              "to check; set loop.augment_min_label_p=0 for this task")
        with torch.no_grad():
            probs = self.c.classifier.predict_proba(synthetic).float().cpu()
        labels = torch.tensor([int(s.label) for s in synthetic])
        p_label = probs.gather(1, labels[:, None]).squeeze(1)
        return [s for s, p in zip(synthetic, p_label.tolist(), strict=True)
                if p >= self.cfg.augment_min_label_p]

    # ----------------------------------------------------------------- improve
    def _improve(self, current: _Round) -> None:
        if not self.phases.improve:
            return
        for step in range(1, self.cfg.rl_steps + 1):
            with current.timed("improve"):
                metrics = self._guard(current, step, partial(self._improve_step, current, step))
            self.state.global_step += 1
            if metrics is None:
                metrics = {"nonfinite/skipped": 1}
            else:
                current.add_step(metrics)
            self.emit({"kind": "step", "round": current.round, "step": step,
                       "global_step": self.state.global_step, **metrics})

    def _improve_step(self, current: _Round, step: int) -> dict[str, float]:
        """rollout → reference log-probs → reward → optimizer update; returns the step metrics."""
        c = self.c
        # data-parallel (advx.distributed): the same global batch on every rank, this rank's
        # shard sampled and trained on under a seed of its own; a plain run is unchanged
        prompts = shard(c.task.rl_prompts(self.cfg.batch_size, self.rng))
        with rank_seed():
            metrics = self._improve_shard(current, step, prompts)
        return mean_metrics(metrics)  # over the ranks' shards (a plain run: as is)

    def _improve_shard(self, current: _Round, step: int, prompts: Any) -> dict[str, float]:
        c = self.c
        rollout = c.generator.sample(
            prompts, n=self.cfg.samples_per_prompt, temperature=self.cfg.temperature
        )
        if self.reference is not None:
            with torch.no_grad():
                rollout.ref_logprobs = self.reference.policy_outputs(rollout).logprobs.detach()
        ctx = StepContext(
            task=c.task, generator=c.generator, classifier=c.classifier,
            reference=self.reference, round=current.round, step=step, rng=self.rng,
        )
        rewards = c.reward(rollout, ctx)
        # the terms first: a NaN term is the cause, a NaN total only its consequence
        try:
            check_finite_terms("reward/", {**rewards.terms, "total": rewards.total})
            bad: NonFiniteError | None = None
        except NonFiniteError as exc:
            bad = exc
        if any_rank(bad is not None):  # data-parallel: every rank skips or stops alike
            raise bad or NonFiniteError("reward (on another process)", float("nan"))
        update = c.optimizer.update(rollout, rewards, ctx)
        self._keep_rollout(current, step, rollout, rewards)
        lengths = rollout.lengths.float().mean().item()
        return {**rewards.summary(), **_namespaced("optim", update), "rollout/length": lengths}

    def _keep_rollout(self, current: _Round, step: int, rollout: Rollout,
                      rewards: Rewards) -> None:
        if not self.cfg.save_samples:
            return
        total = rewards.total.detach().float().cpu().tolist()
        terms = {k: v.detach().float().cpu().tolist() for k, v in rewards.terms.items()}
        for i, (prompt, text) in enumerate(zip(rollout.prompts, rollout.texts, strict=True)):
            row = {"phase": "improve", "round": current.round, "step": step,
                   "prompt": prompt.text, "text": text, "reward": total[i]}
            row.update({f"reward/{k}": v[i] for k, v in terms.items()})
            current.samples.append(row)

    # ----------------------------------------------------------------- end of round
    def _evaluated(self, round: int) -> bool:
        """Rounds that are evaluated: 0, every eval_every-th, and the last."""
        return self.phases.evaluate and (
            round == 0 or round % self.cfg.eval_every == 0 or round == self.cfg.rounds
        )

    def _checkpointed(self, round: int) -> bool:
        """Rounds that are checkpointed: 0, every checkpoint_every-th, and the last."""
        return self.cfg.checkpoint and (
            round == 0 or round % self.cfg.checkpoint_every == 0 or round == self.cfg.rounds
        )

    def _end_round(self, current: _Round) -> None:
        evaluation = self.evaluate(current) if self._evaluated(current.round) else None
        self._record(current, evaluation)
        if self._checkpointed(current.round):
            self._checkpoint(current.round)

    def evaluate(self, current: _Round | int) -> dict[str, Any]:
        """``task.evaluate`` at this round, on its own random streams (see evaluation_rng).
        Data-parallel: the generator's sampling in it is sharded and gathered."""
        round = current if isinstance(current, int) else current.round
        stage = "pretrain" if round == 0 else f"round-{round}"
        with evaluation_rng(self.info.seed, round), sharded_sampling(self.c.generator):
            if isinstance(current, _Round):
                with current.timed("evaluate"):
                    evaluation = dict(self.c.task.evaluate(self.c, stage))
            else:
                evaluation = dict(self.c.task.evaluate(self.c, stage))
        self.eval_keys.update(evaluation)
        return evaluation

    def _record(self, current: _Round, evaluation: dict[str, Any] | None) -> None:
        """Build the round record (phase metrics, evaluation, the improve phase's means,
        timings), check it for blow-ups and emit it; write the round's samples."""
        self.state.round = current.round
        record: dict[str, Any] = {
            "kind": "round", "round": current.round, "global_step": self.state.global_step,
            "evaluated": evaluation is not None, **(evaluation or {}), **current.metrics,
            **current.step_means(), **(evaluation or {}),  # evaluation wins a clash
        }
        if self.cfg.on_nonfinite == "skip":
            record["nonfinite/skipped"] = current.nonfinite_skipped
        record.update(current.seconds)
        record["time/round_s"] = time.perf_counter() - current.started
        self._check_blowups(record, evaluation or {})
        self.history.append(record)
        if self.cfg.save_samples:  # before the record: a logger may read the round's samples
            self.run_dir.write_samples(current.round, current.samples)
        self.emit(record)

    def _check_blowups(self, record: Mapping[str, Any], evaluation: Mapping[str, Any]) -> None:
        """Warn (once per key) when an evaluation metric or a loss/NLL is not finite or
        beyond ``BLOWUP_LIMIT`` in magnitude: training diverged without a NaN in the update."""
        for key, value in record.items():
            watched = key in evaluation or "loss" in key or "nll" in key.lower()
            number = _number(value)
            if not watched or number is None or key in self._warned_keys:
                continue
            if not math.isfinite(number) or abs(number) > BLOWUP_LIMIT:
                self._warned_keys.add(key)
                self._warn(f"{key} = {number:.4g} at round {record['round']}: beyond the sane "
                           f"magnitude |x| <= {BLOWUP_LIMIT:g}; training has probably "
                           "diverged (lower the learning rate?)")

    # ----------------------------------------------------------------- checkpoints
    def _stateful(self) -> dict[str, Any]:
        parts = {
            "generator": self.c.generator,
            "classifier": self.c.classifier,
            "optimizer": self.c.optimizer,
            "reward": self.c.reward,
            "reference": self.reference,
        }
        return {k: v for k, v in parts.items() if v is not None and hasattr(v, "state_dict")}

    def _checkpoint(self, round: int) -> None:
        parts: dict[str, Any] = {name: obj.state_dict() for name, obj in self._stateful().items()}
        parts["rng"] = rng_state(self.rng)
        parts["loop"] = {"round": round, "global_step": self.state.global_step,
                         "pool": self.state.pool, "eval_keys": sorted(self.eval_keys),
                         "nonfinite_skipped": self.nonfinite_skipped,
                         "recipe": self.info.recipe, "origin": self.origin}
        self.run_dir.save_checkpoint(round, parts)
        best = self._best() if self.cfg.keep_best else None
        protect = {best["round"]} if best else set()
        self.run_dir.prune_checkpoints(self.cfg.keep_checkpoints, protect=protect)

    def read_checkpoint(self, round: int | None = None) -> tuple[dict[str, Any], int]:
        """The parts of checkpoint ``round`` (default: the last complete one, falling back
        past incomplete or unreadable ones with a warning) and its round."""
        candidates = self.run_dir.checkpoint_rounds()
        if round is not None:
            candidates = [r for r in candidates if r == round]
        for at in reversed(candidates):
            problem = self.run_dir.checkpoint_problem(at)
            if problem is None:
                try:
                    return self.run_dir.load_checkpoint(at), at
                except Exception as exc:  # a truncated or corrupt file: pickle/zip/EOF errors
                    problem = f"unreadable ({type(exc).__name__}: {exc})"
            if round is not None:
                raise ConfigError(f"{self.run_dir.checkpoints}/round-{at} is not a complete "
                                  f"checkpoint: {problem}; choose another round")
            self._warn(f"checkpoints/round-{at} is incomplete: {problem}; "
                       "resuming from an earlier checkpoint")
        if round is not None:
            have = self.run_dir.checkpoint_rounds()
            raise ConfigError(f"{self.run_dir.path} has no checkpoint of round {round}; "
                              f"checkpointed rounds: {have or 'none'}")
        raise ConfigError(
            f"{self.run_dir.path} has no complete checkpoint to resume from "
            "(checkpoints/round-<n>/); start it again with `advx run RECIPE`"
        )

    def load_weights(self, parts: Mapping[str, Any], round: int, source: str | None = None,
                     hint: str = "was recipe.yaml replaced?") -> None:
        """Load the components' states (and the reference) from checkpoint ``parts``: what
        ``--resume``, ``advx eval/export/generate/predict`` and ``run --from`` share.

        ``source`` names the recipe the components were built from, for the message when a
        part does not fit (default: this run's recipe.yaml).
        """
        if "reference" in parts and self.c.generator is not None:
            self.reference = self.c.generator.reference()
        for name, obj in self._stateful().items():
            if name in parts:
                try:
                    obj.load_state_dict(parts[name])
                except Exception as exc:
                    raise ConfigError(
                        f"checkpoints/round-{round}/{name}.pt does not fit the {name} built from "
                        f"{source or self.run_dir.recipe_path} ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}); {hint}"
                    ) from exc

    def restore(self) -> int:
        """Load the last complete checkpoint (falling back past incomplete or unreadable ones,
        with a warning); return its round. Checks first that the checkpoint was trained with
        this recipe, so a foreign recipe.yaml fails with one message, not a shape error."""
        parts, last = self.read_checkpoint()
        loop = parts["loop"]
        if "recipe" in loop:
            check_same_training(loop["recipe"], self.info.recipe, self.run_dir)
        self.load_weights(parts, last)
        self.state = _State(round=loop["round"], global_step=loop["global_step"],
                            pool=list(loop["pool"]))
        self.nonfinite_skipped = int(loop.get("nonfinite_skipped", 0))
        kept, notes = self.run_dir.truncate_metrics(last)
        for note in notes:
            self._warn(note)
        self.history = [r for r in kept if r.get("kind") == "round"]
        self.eval_keys = set(loop.get("eval_keys") or self._summary_eval_keys())
        set_rng_state(parts["rng"], self.rng)
        self.origin = loop.get("origin")
        self.info.resumed_from_round = last
        self.first_round = last + 1
        self._restored = True
        return last

    def _summary_eval_keys(self) -> list[str]:
        """Checkpoints written before eval_keys were stored: read them from summary.json."""
        if not self.run_dir.summary_path.exists():
            return []
        try:
            return list(self.run_dir.read_summary().get("eval_keys", []))
        except (ValueError, AttributeError, OSError) as exc:
            self._warn(f"{self.run_dir.summary_path} is unreadable ({exc}); it is rewritten "
                       "when this run ends")
            return []

    # ----------------------------------------------------------------- summary
    def _best(self) -> dict[str, Any] | None:
        monitor = self.cfg.monitor
        scored = [r for r in self.history if r.get("evaluated")
                  and _number(r.get(monitor)) is not None
                  and math.isfinite(float(r[monitor]))] if monitor else []
        if not scored:
            return None
        pick = max if self.cfg.monitor_mode == "max" else min
        return pick(scored, key=lambda r: r[monitor])

    def _summary(self, status: str, wall_s: float,
                 error: BaseException | None = None) -> dict[str, Any]:
        evaluated = [r for r in self.history if r.get("evaluated")] or self.history
        final = evaluated[-1] if evaluated else {}
        summary: dict[str, Any] = {
            "name": self.info.name,
            "status": status,
            "seed": self.info.seed,
            "rounds_completed": self.state.round if self.history else None,
            "global_steps": self.state.global_step,
            "resumed_from_round": self.info.resumed_from_round,
            "monitor": self.cfg.monitor,
            "eval_keys": sorted(self.eval_keys),
            "final": final,
            "best": final,
            "skipped_phases": self.skipped,
            **({"from": self.origin} if self.origin else {}),
            "nonfinite_skipped": self.nonfinite_skipped,
            "wall_s": wall_s,
        }
        if error is not None:
            summary["error"] = {"type": type(error).__name__,
                                "message": str(error) or type(error).__name__}
        if self.cfg.monitor:
            best = self._best()
            summary["best"] = best
            if best is None:
                self._warn(f"monitor {self.cfg.monitor!r} was never logged in a round")
                summary["warning"] = self.warnings[-1]
        summary["warnings"] = list(self.warnings)
        return summary


# ------------------------------------------------------------------------- resume checks


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _resumable(key: str) -> bool:
    return any(key == allowed or key.startswith(f"{allowed}.") for allowed in RESUMABLE_KEYS)


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """Keys (present in both) whose value differs and that may not change on resume."""
    # compared as written to recipe.yaml (paths and enums as text, tuples as lists)
    old, new = _flatten(jsonable(before)), _flatten(jsonable(after))
    return [(key, old[key], new[key]) for key in old
            if key in new and old[key] != new[key] and not _resumable(key)]


def check_same_training(trained: Mapping[str, Any], recipe: Mapping[str, Any],
                        run_dir: RunDir) -> None:
    """ConfigError if ``recipe`` differs from the one the checkpoint was trained with."""
    changed = changed_keys(trained, recipe)
    if changed:
        key, old, new = changed[0]
        raise ConfigError(
            f"{run_dir.recipe_path} is not the recipe this run's checkpoint was trained with: "
            f"{key} is {new!r} there but {old!r} in the checkpoint ({len(changed)} key(s) "
            "differ). Restore the run's own recipe.yaml, or start a new run"
        )


def _is_interruption(exc: BaseException) -> bool:
    """Ctrl-C, SIGTERM (``advx.runner.Terminated``) and a sweep pruning the trial
    (``optuna.TrialPruned``, matched by name: the core does not import optuna) stop a run
    on purpose; anything else is a failure."""
    return isinstance(exc, KeyboardInterrupt) or any(
        cls.__name__ == "TrialPruned" for cls in type(exc).__mro__)


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _disk_error(exc: BaseException, run_dir: RunDir) -> AdvxError | None:
    """A full disk or a folder that cannot be written is the user's to fix: say so, once."""
    if not isinstance(exc, OSError) or exc.errno not in _DISK_ERRNOS:
        return None
    where = exc.filename or run_dir.path
    return ConfigError(
        f"cannot write {where}: {exc.strerror or exc} ({errno.errorcode.get(exc.errno, '')}). "
        f"Free disk space or fix the permissions, then continue with "
        f"`advx run --resume {run_dir.path}`"
    )
