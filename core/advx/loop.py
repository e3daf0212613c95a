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
        evaluate (every eval_every rounds and the last), log, checkpoint

Every phase can be switched off in the recipe's ``loop:`` block; a phase whose component is
absent from the recipe is skipped and listed in ``summary.json`` under ``skipped_phases``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import numpy as np
import torch

from advx.components import Components, Generator, StepContext
from advx.rollout import Rewards, Rollout, Sample
from advx.run_info import RunInfo
from advx.rundir import RunDir

__all__ = ["Experiment", "LoopConfig", "NullReporter", "Reporter", "rng_state", "seed_everything"]


class _Choice(str, Enum):
    """A string choice of a config: the recipe validator names the allowed values, and it
    compares and prints as its plain value (``mode == "replace"``, ``f"{mode}"``)."""

    def __str__(self) -> str:
        return str(self.value)


class AugmentMode(_Choice):
    """``loop.augment_mode``."""

    accumulate = "accumulate"
    replace = "replace"


class MonitorMode(_Choice):
    """``loop.monitor_mode``."""

    max = "max"
    min = "min"


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
        eval_every: evaluate every this many rounds (the last round is always evaluated).
        checkpoint: write ``checkpoints/round-<n>/`` after every evaluated round (``--resume``).
        monitor: metric name whose best round is reported in ``summary.json`` as ``best``
            (e.g. ``valid/hr@10``); empty means the final round only.
        monitor_mode: ``max`` or ``min`` for ``monitor``.
        evaluate: call ``task.evaluate`` at all (round 0 and every ``eval_every`` rounds).
        keep_checkpoints: keep only the newest this many checkpoints (0 keeps all).
        save_samples: write ``samples/round-<n>.jsonl`` (augment and improvement texts).
    """

    rounds: int = 4
    pretrain_generator: bool = True
    pretrain_classifier: bool = True
    augment: bool = True
    augment_samples: int = 1
    augment_mode: AugmentMode = AugmentMode.accumulate
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
    monitor: str = ""
    monitor_mode: MonitorMode = MonitorMode.max
    evaluate: bool = True
    keep_checkpoints: int = 0
    save_samples: bool = True


# ------------------------------------------------------------------------- seeding / RNG


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """Every random state the run draws from, for a checkpoint."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "loop": rng.bit_generator.state,
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], rng: np.random.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["loop"]
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------- progress


class Reporter(Protocol):
    """What the loop tells a progress display (the CLI's rich display, or nothing)."""

    def start(self, name: str, rounds: int, rl_steps: int, first_round: int) -> None: ...

    def phase(self, round: int, phase: str) -> None: ...

    def step(self, round: int, step: int, metrics: Mapping[str, float]) -> None: ...

    def round_end(self, round: int, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class NullReporter:
    """Reports nothing (the Python API's default)."""

    def start(self, name: str, rounds: int, rl_steps: int, first_round: int) -> None: ...

    def phase(self, round: int, phase: str) -> None: ...

    def step(self, round: int, step: int, metrics: Mapping[str, float]) -> None: ...

    def round_end(self, round: int, metrics: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------- the loop


def _namespaced(prefix: str, metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """Component metrics as returned; bare keys get the phase's prefix (``classify/loss``)."""
    return {(k if "/" in k else f"{prefix}/{k}"): v for k, v in (metrics or {}).items()}


@dataclass
class _State:
    """What a checkpoint holds besides the components: where the loop is."""

    round: int = 0
    global_step: int = 0
    pool: list[Sample] = field(default_factory=list)


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
        reporter: Reporter | None = None,
    ) -> None:
        self.c = components
        self.cfg = config
        self.run_dir = run_dir
        self.info = info
        self.hook = hook
        self.reporter = reporter or NullReporter()
        self.rng = np.random.default_rng(info.seed)
        self.state = _State()
        self.reference: Generator | None = None
        self.history: list[dict[str, Any]] = []
        self._samples: list[dict[str, Any]] = []
        self.eval_keys: set[str] = set()
        self.skipped = self._skipped_phases()
        self._phase_seconds: dict[str, float] = {}

    # ----------------------------------------------------------------- phases on/off
    def _skipped_phases(self) -> dict[str, str]:
        """Phases the recipe turns on but cannot run, with the missing component."""
        c, cfg = self.c, self.cfg
        needs = {
            "pretrain_generator": (
                cfg.pretrain_generator, {"task": c.task, "generator": c.generator}
            ),
            "pretrain_classifier": (
                cfg.pretrain_classifier, {"task": c.task, "classifier": c.classifier}
            ),
            "augment": (
                cfg.augment and (cfg.rounds > 0 or cfg.pretrain_d_steps > 0),
                {"task": c.task, "generator": c.generator},
            ),
            "classify": (
                cfg.classify and (cfg.rounds > 0 or cfg.pretrain_d_steps > 0),
                {"task": c.task, "classifier": c.classifier},
            ),
            "improve": (
                cfg.rl_steps > 0 and cfg.rounds > 0,
                {"task": c.task, "generator": c.generator, "reward": c.reward,
                 "optimizer": c.optimizer},
            ),
            "use_reference": (cfg.use_reference, {"generator": c.generator}),
            "evaluate": (cfg.evaluate, {"task": c.task}),
        }
        skipped = {}
        for phase, (wanted, parts) in needs.items():
            missing = [kind for kind, value in parts.items() if value is None]
            if wanted and missing:
                skipped[phase] = f"recipe has no {', '.join(missing)} block"
        return skipped

    def _on(self, phase: str) -> bool:
        return bool(getattr(self.cfg, phase)) and phase not in self.skipped

    def _improves(self) -> bool:
        return self.cfg.rl_steps > 0 and "improve" not in self.skipped

    # ----------------------------------------------------------------- run
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Run (or, with ``resume``, continue after the last checkpoint) and return the summary."""
        started = time.perf_counter()
        first = self._resume() + 1 if resume else 0
        self.hook.advx_on_run_start(run=self.info)
        self.reporter.start(self.info.name, self.cfg.rounds, self.cfg.rl_steps, first)
        status = "interrupted"  # what summary.json says if anything below raises
        try:
            try:
                if first == 0:
                    self._pretrain()
                    first = 1
                for round in range(first, self.cfg.rounds + 1):
                    self._round(round)
                status = "complete"
            finally:
                summary = self._summary(status, time.perf_counter() - started)
                self.run_dir.write_summary(summary)
                self.reporter.close()
            self.hook.advx_on_run_end(run=self.info, summary=summary)
        finally:
            for logger in self.c.loggers:
                logger.close()
        return summary

    def _pretrain(self) -> None:
        c, round_start = self.c, time.perf_counter()
        record: dict[str, Any] = {}
        if self._on("pretrain_generator"):
            with self._phase(0, "pretrain generator"):
                record.update(_namespaced("sft", c.generator.sft(c.task.generator_train())))
        if self._on("pretrain_classifier"):
            with self._phase(0, "pretrain classifier"):
                train = c.task.classifier_train()
                record.update(_namespaced("classify", c.classifier.fit(train)))
        for _ in range(self.cfg.pretrain_d_steps):
            record.update(self._d_step(0))
        if self._on("use_reference"):
            self.reference = c.generator.reference()
        self._end_round(0, record, round_start)

    def _round(self, round: int) -> None:
        round_start = time.perf_counter()
        record: dict[str, Any] = {}
        if self.cfg.improve_first:
            self._improve(round)
        for _ in range(self.cfg.d_steps):
            record.update(self._d_step(round))
        if not self.cfg.improve_first:
            self._improve(round)
        self._end_round(round, record, round_start)

    # ----------------------------------------------------------------- augment / classify
    def _d_step(self, round: int) -> dict[str, Any]:
        """One (augment, classify) repetition."""
        metrics: dict[str, Any] = {}
        if self._on("augment"):
            with self._phase(round, "augment"):
                metrics.update(self._augment(round))
        if self._on("classify"):
            with self._phase(round, "classify"):
                train = [*self.c.task.classifier_train(), *self.state.pool]
                metrics.update(_namespaced("classify", self.c.classifier.fit(train)))
        return metrics

    def _augment(self, round: int) -> dict[str, Any]:
        prompts = self.c.task.augment_prompts(round)
        rollout = self.c.generator.sample(
            prompts, n=self.cfg.augment_samples, temperature=self.cfg.temperature
        )
        synthetic = list(self.c.task.synthetic_samples(rollout))
        if self.cfg.augment_mode == "replace":
            self.state.pool = synthetic
        else:
            self.state.pool = [*self.state.pool, *synthetic]
        for sample in synthetic:
            self._samples.append({
                "phase": "augment",
                "round": round,
                "prompt": sample.prompt.text if sample.prompt is not None else None,
                "text": sample.text,
                "label": sample.label,
            })
        return {"augment/new": len(synthetic), "augment/pool_size": len(self.state.pool)}

    # ----------------------------------------------------------------- improve
    def _improve(self, round: int) -> None:
        if not self._improves():
            return
        self.reporter.phase(round, "improve")
        for step in range(1, self.cfg.rl_steps + 1):
            with self._timed("improve"):
                metrics = self._improve_step(round, step)
            self.state.global_step += 1
            record = {"kind": "step", "round": round, "step": step,
                      "global_step": self.state.global_step, **metrics}
            self.run_dir.append_metrics(record)
            for logger in self.c.loggers:
                logger.log(record, self.state.global_step)
            self.hook.advx_on_step_end(run=self.info, round=round, step=step, metrics=metrics)
            self.reporter.step(round, step, metrics)

    def _improve_step(self, round: int, step: int) -> dict[str, float]:
        """rollout → reference log-probs → reward → optimizer update; returns the step metrics."""
        c = self.c
        prompts = c.task.rl_prompts(self.cfg.batch_size, self.rng)
        rollout = c.generator.sample(
            prompts, n=self.cfg.samples_per_prompt, temperature=self.cfg.temperature
        )
        if self.reference is not None:
            with torch.no_grad():
                rollout.ref_logprobs = self.reference.policy_outputs(rollout).logprobs.detach()
        ctx = StepContext(
            task=c.task, generator=c.generator, classifier=c.classifier,
            reference=self.reference, round=round, step=step, rng=self.rng,
        )
        rewards = c.reward(rollout, ctx)
        update = c.optimizer.update(rollout, rewards, ctx)
        self._keep_rollout(round, step, rollout, rewards)
        lengths = rollout.lengths.float().mean().item()
        return {**rewards.summary(), **_namespaced("optim", update), "rollout/length": lengths}

    def _keep_rollout(self, round: int, step: int, rollout: Rollout, rewards: Rewards) -> None:
        if not self.cfg.save_samples:
            return
        total = rewards.total.detach().float().cpu().tolist()
        terms = {k: v.detach().float().cpu().tolist() for k, v in rewards.terms.items()}
        for i, (prompt, text) in enumerate(zip(rollout.prompts, rollout.texts, strict=True)):
            row = {"phase": "improve", "round": round, "step": step, "prompt": prompt.text,
                   "text": text, "reward": total[i]}
            row.update({f"reward/{k}": v[i] for k, v in terms.items()})
            self._samples.append(row)

    # ----------------------------------------------------------------- timing
    def _phase(self, round: int, name: str) -> AbstractContextManager[None]:
        """Show ``name`` in the progress display and time it (see ``_timed``)."""
        self.reporter.phase(round, name)
        return self._timed(name)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        """Add the block's wall time to ``time/<name>_s`` of this round's record (a phase
        repeated within a round, d-steps or RL steps, sums)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            key = f"time/{name.replace(' ', '_')}_s"
            elapsed = time.perf_counter() - started
            self._phase_seconds[key] = self._phase_seconds.get(key, 0.0) + elapsed

    # ----------------------------------------------------------------- end of round
    def _boundary(self, round: int) -> bool:
        """Rounds that are evaluated and checkpointed: 0, every eval_every-th, and the last."""
        every = max(self.cfg.eval_every, 1)
        return round == 0 or round % every == 0 or round == self.cfg.rounds

    def _end_round(self, round: int, record: dict[str, Any], started: float) -> None:
        boundary = self._boundary(round)
        evaluation: dict[str, Any] = {}
        if boundary and self._on("evaluate"):
            stage = "pretrain" if round == 0 else f"round-{round}"
            with self._phase(round, "evaluate"):
                evaluation = dict(self.c.task.evaluate(self.c, stage))
            self.eval_keys.update(evaluation)
            record.update(evaluation)
        self.state.round = round
        full = {"kind": "round", "round": round, "global_step": self.state.global_step,
                "evaluated": boundary and self._on("evaluate"), **record,
                **self._phase_seconds, "time/round_s": time.perf_counter() - started}
        self._phase_seconds = {}
        self.history.append(full)
        self.run_dir.append_metrics(full)
        if self.cfg.save_samples:
            self.run_dir.write_samples(round, self._samples)
        self._samples = []
        for logger in self.c.loggers:
            logger.log(full, self.state.global_step)
        if boundary and self.cfg.checkpoint:
            self._checkpoint(round)
        self.hook.advx_on_round_end(run=self.info, round=round, metrics=full)
        self.reporter.round_end(round, evaluation or full)

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
                         "pool": self.state.pool}
        self.run_dir.save_checkpoint(round, parts)
        self.run_dir.prune_checkpoints(self.cfg.keep_checkpoints)

    def _resume(self) -> int:
        """Load the last checkpoint; return its round (the last complete one)."""
        from advx.errors import ConfigError

        last = self.run_dir.last_checkpoint()
        if last is None:
            raise ConfigError(
                f"{self.run_dir.path} has no checkpoint to resume from (checkpoints/round-<n>/); "
                "start it again with `advx run RECIPE`"
            )
        parts = self.run_dir.load_checkpoint(last)
        if "reference" in parts and self.c.generator is not None:
            self.reference = self.c.generator.reference()
        for name, obj in self._stateful().items():
            if name in parts:
                obj.load_state_dict(parts[name])
        loop = parts["loop"]
        self.state = _State(round=loop["round"], global_step=loop["global_step"],
                            pool=list(loop["pool"]))
        self.history = [r for r in self.run_dir.truncate_metrics(last) if r.get("kind") == "round"]
        self.eval_keys = set(self.run_dir.read_summary().get("eval_keys", [])
                             if self.run_dir.summary_path.exists() else [])
        set_rng_state(parts["rng"], self.rng)
        self.info.resumed_from_round = last
        return last

    # ----------------------------------------------------------------- summary
    def _summary(self, status: str, wall_s: float) -> dict[str, Any]:
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
            "wall_s": wall_s,
        }
        if self.cfg.monitor:
            scored = [r for r in evaluated if isinstance(r.get(self.cfg.monitor), (int, float))]
            if scored:
                pick = max if self.cfg.monitor_mode == "max" else min
                summary["best"] = pick(scored, key=lambda r: r[self.cfg.monitor])
            else:
                summary["best"] = None
                summary["warning"] = f"monitor {self.cfg.monitor!r} was never logged in a round"
        return summary
