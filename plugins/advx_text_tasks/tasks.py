"""Unconditional text-generation tasks: the SeqGAN oracle and a sentence corpus.

Both are SeqGAN-shaped: every prompt is ``Prompt("")``; the classifier (discriminator) sees
real sequences with label 1 (``classifier_train``) and generated ones with label 0
(``synthetic_samples``); the loop's ``augment_mode: replace`` draws fresh fakes for every
d-step. Every evaluation can sweep the sampling temperature (``temperatures``), because a
single quality number flatters GANs: a cooler MLE model also gains quality at the cost of
diversity (Caccia et al., "Language GANs Falling Short", ICLR 2020). At temperature τ the
samples come from softmax(logits/τ) and NLL-test scores the same tempered model (the
generator's ``nll(samples, temperature=τ)``, part of the Generator contract), per token of the
generator's own tokenizer (``SequenceNLL.tokens``). Metric names carry ``@t<τ>`` for τ ≠ 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from advx.components import BuildContext, Components, Generator
from advx.errors import ConfigError, DataError
from advx.rollout import Prompt, Rollout, Sample

from advx_text_tasks.bleu import bleu, self_bleu
from advx_text_tasks.oracle import OracleLSTM

EMPTY = Prompt("")


def _suffix(temperature: float) -> str:
    return "" if temperature == 1.0 else f"@t{temperature:g}"


def _sweep(temperatures: Sequence[float]) -> list[float]:
    return [1.0] + [float(t) for t in temperatures if float(t) != 1.0]


def _check_eval_keys(config: Any) -> None:
    """Evaluation keys a late call would reject with a traceback, checked at build time."""
    for i, tau in enumerate(config.temperatures):
        if not float(tau) > 0:
            raise ConfigError(f"task.temperatures[{i}] must be > 0 (a sampling temperature), "
                              f"got {tau}")
    for key in ("eval_batch", "num_eval_samples"):
        if getattr(config, key) < 1:
            raise ConfigError(f"task.{key} must be ≥ 1, got {getattr(config, key)}")


def _sample_texts(generator: Generator, num: int, temperature: float, batch: int) -> list[str]:
    texts: list[str] = []
    while len(texts) < num:
        size = min(batch, num - len(texts))
        texts.extend(generator.sample([EMPTY] * size, n=1, temperature=temperature).texts)
    return texts


@torch.no_grad()
def nll_per_token(
    generator: Generator, samples: Sequence[Sample], temperature: float, batch: int
) -> float:
    """The generator's NLL of ``samples`` at ``temperature``, per token it scored (its own
    tokenizer's tokens, EOS included, from :class:`advx.rollout.SequenceNLL`)."""
    total, tokens = 0.0, 0
    for start in range(0, len(samples), batch):
        nll = generator.nll(samples[start : start + batch], temperature=temperature)
        total += float(nll.total.sum())
        tokens += int(nll.tokens.sum())
    return total / max(tokens, 1)


# ---------------------------------------------------------------------------- oracle_lm
@dataclass
class OracleLMConfig:
    """The ``task:`` block for ``name: oracle_lm`` (SeqGAN's synthetic benchmark).

    Attributes:
        oracle_path: the reference oracle pickle; empty builds a seeded random oracle.
        oracle_seed: seed of the random oracle (when ``oracle_path`` is empty).
        data_seed: seed of the oracle's training/test draws (fixed across runs so every
            method trains on the same 10,000 sequences).
        vocab_size, seq_len, emb_dim, hidden_dim: random-oracle sizes (paper: 5000, 20, 32, 32);
            a loaded oracle takes its own vocab/emb/hidden from the file.
        num_train: oracle sequences for MLE and as the discriminator's positives (10,000).
        num_test: held-out oracle sequences for NLL-test.
        num_eval_samples: generator samples scored by the oracle for NLL-oracle (10,000).
        num_fakes: augment prompts per d-step = generated negatives (paper: 10,000).
        d_real: real sequences per d-step, a fresh random subset each call (0 = all).
        temperatures: extra sampling temperatures evaluated besides 1.0.
        eval_batch: batch size for evaluation sampling and scoring.
    """

    oracle_path: str = "../shared/data/seqgan_oracle/target_params_py3.pkl"
    oracle_seed: int = 88
    data_seed: int = 88
    vocab_size: int = 5000
    seq_len: int = 20
    emb_dim: int = 32
    hidden_dim: int = 32
    num_train: int = 10000
    num_test: int = 10000
    num_eval_samples: int = 10000
    num_fakes: int = 10000
    d_real: int = 0
    temperatures: list[float] = field(default_factory=list)
    eval_batch: int = 500


_ORACLE_DATA: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


class UnconditionalLMTask:
    """The task duties shared by the SeqGAN benchmarks: prompts are empty, real sequences are
    class 1 and generated ones class 0 for the discriminator. Subclasses set ``config``
    (with ``d_real`` and ``num_fakes``), ``train`` and ``_rng``."""

    config: Any
    train: list[Sample]
    _rng: np.random.Generator

    def generator_train(self) -> list[Sample]:
        return self.train

    def classifier_train(self) -> list[Sample]:
        real = self.train
        if self.config.d_real and self.config.d_real < len(real):
            pick = self._rng.choice(len(real), self.config.d_real, replace=False)
            real = [real[i] for i in pick]
        return [s.with_label(1) for s in real]

    def augment_prompts(self, round: int) -> list[Prompt]:
        return [EMPTY] * self.config.num_fakes

    def synthetic_samples(self, rollout: Rollout) -> list[Sample]:
        return [Sample(text, EMPTY, label=0) for text in rollout.texts]

    def rl_prompts(self, batch_size: int, rng: np.random.Generator) -> list[Prompt]:
        return [EMPTY] * batch_size

    def texts(self) -> list[str]:
        return [s.text for s in self.train]


class OracleLMTask(UnconditionalLMTask):
    """Real data = samples of a fixed oracle LSTM; texts are space-separated token ids."""

    def __init__(self, config: OracleLMConfig) -> None:
        self.config = config
        if config.oracle_path:
            self.oracle = OracleLSTM.from_pickle(Path(config.oracle_path))
        else:
            torch.manual_seed(config.oracle_seed)
            self.oracle = OracleLSTM.random(
                config.oracle_seed, config.vocab_size, config.emb_dim, config.hidden_dim
            )
        key = (config.oracle_path, config.oracle_seed, config.data_seed, config.num_train,
               config.num_test, config.seq_len, config.vocab_size)
        if key not in _ORACLE_DATA:  # drawing 20k sequences costs seconds: once per process
            gen = torch.Generator().manual_seed(config.data_seed)
            train = self.oracle.sample(config.num_train, config.seq_len, gen)
            _ORACLE_DATA[key] = (train, self.oracle.sample(config.num_test, config.seq_len, gen))
        self.train_ids, self.test_ids = _ORACLE_DATA[key]
        self.train = [Sample(self.to_text(r), EMPTY) for r in self.train_ids.tolist()]
        self.test = [Sample(self.to_text(r), EMPTY) for r in self.test_ids.tolist()]
        self._rng = np.random.default_rng(config.data_seed + 1)

    @staticmethod
    def to_text(ids: Sequence[int]) -> str:
        return " ".join(str(i) for i in ids)

    def to_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``ids, mask [N, seq_len]`` from generated texts (shorter rows are masked)."""
        ids = torch.zeros(len(texts), self.config.seq_len, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, text in enumerate(texts):
            row = [int(t) for t in text.split()][: self.config.seq_len]
            if any(not 0 <= t < self.oracle.vocab_size for t in row):
                raise DataError(f"generated token outside the oracle's vocabulary: {text[:60]!r}")
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return ids, mask

    def nll_oracle(self, texts: Sequence[str]) -> float:
        """The oracle's NLL of ``texts`` per token (the paper's NLL-oracle)."""
        total, tokens = 0.0, 0
        for start in range(0, len(texts), self.config.eval_batch):
            ids, mask = self.to_ids(texts[start : start + self.config.eval_batch])
            total += float((self.oracle.token_nll(ids) * mask).sum())
            tokens += int(mask.sum())
        return total / max(tokens, 1)

    def oracle_entropy(self) -> float:
        """Per-token entropy estimate of the oracle: its NLL of its own test samples."""
        return float(self.oracle.token_nll(self.test_ids).mean())

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        generator = components.generator
        if generator is None:
            return {}
        metrics: dict[str, float] = {}
        for tau in _sweep(self.config.temperatures):
            texts = _sample_texts(
                generator, self.config.num_eval_samples, tau, self.config.eval_batch
            )
            metrics[f"nll_oracle{_suffix(tau)}"] = self.nll_oracle(texts)
            metrics[f"nll_test{_suffix(tau)}"] = nll_per_token(
                generator, self.test, tau, self.config.eval_batch
            )
        return metrics


def build_oracle_lm(config: OracleLMConfig, ctx: BuildContext) -> OracleLMTask:
    _check_eval_keys(config)
    return OracleLMTask(config)


# ---------------------------------------------------------------------------- text_corpus
@dataclass
class TextCorpusConfig:
    """The ``task:`` block for ``name: text_corpus`` (Texygen COCO and any sentence file).

    Attributes:
        train_path, test_path: one whitespace-tokenised sentence a line.
        tokenize: ``whitespace`` (keep the file's tokens) or ``char`` (one token per
            non-space character, for Chinese and other unsegmented text).
        max_train, max_test: use at most this many lines (0 = all).
        num_eval_samples: generated sentences scored by BLEU (hypotheses).
        bleu_references: test sentences used as references (0 = all; Texygen's fast mode: 500).
        self_bleu_samples: generated sentences in self-BLEU (each against the others; 500
            as Texygen's fast mode).
        bleu_orders: the n of BLEU-n / self-BLEU-n.
        nll_test_max: NLL-test over the first this many test sentences (0 = all).
        num_fakes: generated negatives per d-step.
        d_real: real sentences per d-step, a fresh random subset each call (0 = all).
        temperatures: extra sampling temperatures evaluated besides 1.0.
        eval_batch: batch size for sampling and NLL.
        seed: seed of the d-step real subsets.
    """

    train_path: str = "../shared/data/texygen_coco/image_coco.txt"
    test_path: str = "../shared/data/texygen_coco/test_coco.txt"
    tokenize: str = "whitespace"
    max_train: int = 0
    max_test: int = 0
    num_eval_samples: int = 1000
    bleu_references: int = 0
    self_bleu_samples: int = 500
    bleu_orders: list[int] = field(default_factory=lambda: [2, 3, 4, 5])
    nll_test_max: int = 0
    num_fakes: int = 10000
    d_real: int = 0
    temperatures: list[float] = field(default_factory=list)
    eval_batch: int = 500
    seed: int = 0


def read_corpus(path: str, tokenize: str, limit: int) -> list[str]:
    """Lines of ``path`` as space-joined tokens (``char`` splits every character)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"corpus file {file} not found (task.train_path / task.test_path)")
    data = file.read_bytes()
    if b"\x00" in data:
        raise DataError(
            f"corpus file {file} is a binary file (it holds NUL bytes), not UTF-8 text with one "
            f"sentence a line. Point task.train_path / task.test_path at the text files."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"corpus file {file} line {line}: not valid UTF-8 (byte "
            f"0x{data[exc.start : exc.start + 1].hex()}). Convert the file to UTF-8, e.g. "
            f"iconv -f latin1 -t utf-8 {file} > {file.stem}.utf8{file.suffix}"
        ) from None
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        if tokenize == "char":
            tokens = [ch for ch in raw if not ch.isspace()]
        elif tokenize == "whitespace":
            tokens = raw.split()
        else:
            raise DataError(f"task.tokenize must be 'whitespace' or 'char', got {tokenize!r}")
        if tokens:
            lines.append(" ".join(tokens))
        elif raw.strip():
            raise DataError(f"{file}:{number}: line has no tokens")
        if limit and len(lines) >= limit:
            break
    if not lines:
        raise DataError(f"corpus file {file} has no sentences")
    return lines


class TextCorpusTask(UnconditionalLMTask):
    """Real data = the corpus's training sentences; BLEU / self-BLEU / NLL-test metrics."""

    def __init__(self, config: TextCorpusConfig) -> None:
        self.config = config
        train = read_corpus(config.train_path, config.tokenize, config.max_train)
        test = read_corpus(config.test_path, config.tokenize, config.max_test)
        self.train = [Sample(t, EMPTY) for t in train]
        self.test = [Sample(t, EMPTY) for t in test]
        refs = [s.text.split() for s in self.test]
        self.references = refs[: config.bleu_references] if config.bleu_references else refs
        self._rng = np.random.default_rng(config.seed)

    def quality_diversity(self, texts: Sequence[str]) -> dict[str, float]:
        """BLEU-n against the test set and self-BLEU-n of ``texts``."""
        hyps = [t.split() for t in texts]
        own = hyps[: self.config.self_bleu_samples]
        out = {}
        for n in self.config.bleu_orders:
            out[f"bleu{n}"] = bleu(hyps, self.references, n)
            out[f"self_bleu{n}"] = self_bleu(own, n)
        return out

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        generator = components.generator
        if generator is None:
            return {}
        metrics: dict[str, float] = {}
        for tau in _sweep(self.config.temperatures):
            texts = _sample_texts(
                generator, self.config.num_eval_samples, tau, self.config.eval_batch
            )
            for name, value in self.quality_diversity(texts).items():
                metrics[f"{name}{_suffix(tau)}"] = value
            held_out = self.test[: self.config.nll_test_max or None]
            metrics[f"nll_test{_suffix(tau)}"] = nll_per_token(
                generator, held_out, tau, self.config.eval_batch
            )
            metrics[f"mean_len{_suffix(tau)}"] = float(np.mean([len(t.split()) for t in texts]))
        return metrics


def build_text_corpus(config: TextCorpusConfig, ctx: BuildContext) -> TextCorpusTask:
    _check_eval_keys(config)
    if config.tokenize not in ("whitespace", "char"):
        raise ConfigError(f"task.tokenize must be 'whitespace' or 'char', got {config.tokenize!r}")
    return TextCorpusTask(config)


__all__ = [
    "OracleLMConfig",
    "OracleLMTask",
    "TextCorpusConfig",
    "TextCorpusTask",
    "UnconditionalLMTask",
    "build_oracle_lm",
    "build_text_corpus",
]
