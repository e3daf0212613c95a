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

Every metric has a bootstrap standard error ``<metric>_se`` (and ``_resolvable``, see
:mod:`advx.uncertainty`) over the evaluated samples, and the no-training baselines of
:mod:`advx_text_tasks.baselines` are logged beside them as ``baseline/{unigram,real}/...``.
The evaluation's samples at each temperature are written to
``<run dir>/samples/eval-<stage>.jsonl`` (``save_eval_samples`` of them).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from advx.components import BuildContext, Components, Generator
from advx.errors import ConfigError, DataError
from advx.rollout import Prompt, Rollout, Sample
from advx.uncertainty import bootstrap_se, mean_se, with_uncertainty

from advx_text_tasks.baselines import Unigram
from advx_text_tasks.bleu import References, self_bleus
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
    if config.save_eval_samples < 0:
        raise ConfigError(f"task.save_eval_samples must be ≥ 0 (0: none), got "
                          f"{config.save_eval_samples}")


def _ratio(totals: np.ndarray, tokens: np.ndarray) -> float:
    return float(totals.sum() / max(tokens.sum(), 1))


def ratio_se(totals: np.ndarray, tokens: np.ndarray) -> float:
    """Bootstrap SE of a per-token NLL (a ratio of sums over sentences: resampled sentences,
    not tokens, since a sentence's tokens are not independent)."""
    return bootstrap_se(_ratio, totals, tokens)


def write_eval_samples(run_dir: Path | None, stage: str, rows: Sequence[dict[str, Any]]) -> None:
    """``<run dir>/samples/eval-<stage>.jsonl``: the texts an evaluation scored."""
    if run_dir is None or not rows:
        return
    out = Path(run_dir) / "samples" / f"eval-{stage}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _sample_texts(generator: Generator, num: int, temperature: float, batch: int) -> list[str]:
    texts: list[str] = []
    while len(texts) < num:
        size = min(batch, num - len(texts))
        texts.extend(generator.sample([EMPTY] * size, n=1, temperature=temperature).texts)
    return texts


@torch.no_grad()
def nll_per_sample(
    generator: Generator, samples: Sequence[Sample], temperature: float, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per sample: the generator's total NLL at ``temperature`` and the tokens it scored (its
    own tokenizer's tokens, EOS included, from :class:`advx.rollout.SequenceNLL`)."""
    # Batches of similar length (words, then characters, as a proxy for any tokenizer): a
    # batch is padded to its longest sentence, and COCO's test captions in file order padded
    # to 2.4× their tokens (1.1× sorted). Returned in the samples' own order.
    order = sorted(range(len(samples)), key=lambda i: (len(samples[i].text.split()),
                                                       len(samples[i].text)))
    totals, tokens = np.zeros(len(samples)), np.zeros(len(samples))
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        nll = generator.nll([samples[i] for i in rows], temperature=temperature)
        totals[rows] = nll.total.detach().double().cpu().numpy()
        tokens[rows] = nll.tokens.detach().double().cpu().numpy()
    return totals, tokens


def nll_per_token(
    generator: Generator, samples: Sequence[Sample], temperature: float, batch: int
) -> float:
    """The generator's NLL of ``samples`` at ``temperature``, per token it scored."""
    return _ratio(*nll_per_sample(generator, samples, temperature, batch))


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
        save_eval_samples: evaluation samples written per temperature to
            ``samples/eval-<stage>.jsonl`` (0: none).
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
    save_eval_samples: int = 100


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

    def __init__(self, config: OracleLMConfig, run_dir: Path | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self._baselines: dict[str, float] | None = None
        self._warned: set[str] = set()
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
        return _ratio(*self.nll_oracle_rows(texts))

    @torch.no_grad()
    def nll_oracle_rows(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text: the oracle's total NLL and the tokens scored."""
        totals, tokens = [], []
        for start in range(0, len(texts), self.config.eval_batch):
            ids, mask = self.to_ids(texts[start : start + self.config.eval_batch])
            totals += (self.oracle.token_nll(ids) * mask).sum(-1).double().tolist()
            tokens += mask.sum(-1).double().tolist()
        return np.array(totals), np.array(tokens)

    def baselines(self) -> dict[str, float]:
        """``baseline/unigram/{nll_oracle,nll_test}`` and ``baseline/real/nll_oracle`` (the
        oracle's NLL of its held-out samples: its entropy), with SEs; cached."""
        if self._baselines is None:
            unigram = Unigram([s.text.split() for s in self.train], eos=False)
            drawn = unigram.sample(self.config.num_eval_samples, self.config.data_seed + 2,
                                   length=self.config.seq_len)
            oracle_rows = self.nll_oracle_rows([" ".join(t) for t in drawn])
            test_rows = unigram.nll([s.text.split() for s in self.test])
            real_rows = self.nll_oracle_rows([s.text for s in self.test])
            self._baselines = {
                "baseline/unigram/nll_oracle": _ratio(*oracle_rows),
                "baseline/unigram/nll_oracle_se": ratio_se(*oracle_rows),
                "baseline/unigram/nll_test": _ratio(*test_rows),
                "baseline/unigram/nll_test_se": ratio_se(*test_rows),
                "baseline/real/nll_oracle": _ratio(*real_rows),
                "baseline/real/nll_oracle_se": ratio_se(*real_rows),
            }
        return self._baselines

    def oracle_entropy(self) -> float:
        """Per-token entropy estimate of the oracle: its NLL of its own test samples."""
        return float(self.oracle.token_nll(self.test_ids).mean())

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        generator = components.generator
        if generator is None:
            return {}
        metrics: dict[str, float] = {}
        ses: dict[str, float] = {}
        rows: list[dict[str, Any]] = []
        for tau in _sweep(self.config.temperatures):
            texts = _sample_texts(
                generator, self.config.num_eval_samples, tau, self.config.eval_batch
            )
            oracle_rows = self.nll_oracle_rows(texts)
            test_rows = nll_per_sample(generator, self.test, tau, self.config.eval_batch)
            metrics[f"nll_oracle{_suffix(tau)}"] = _ratio(*oracle_rows)
            ses[f"nll_oracle{_suffix(tau)}"] = ratio_se(*oracle_rows)
            metrics[f"nll_test{_suffix(tau)}"] = _ratio(*test_rows)
            ses[f"nll_test{_suffix(tau)}"] = ratio_se(*test_rows)
            rows += [{"phase": "evaluate", "stage": stage, "temperature": tau, "text": t}
                     for t in texts[: self.config.save_eval_samples]]
        write_eval_samples(self.run_dir, stage, rows)
        return {**with_uncertainty(metrics, ses), **self.baselines()}


def build_oracle_lm(config: OracleLMConfig, ctx: BuildContext) -> OracleLMTask:
    _check_eval_keys(config)
    return OracleLMTask(config, run_dir=ctx.run_dir)


# ---------------------------------------------------------------------------- text_corpus
@dataclass
class TextCorpusConfig:
    """The ``task:`` block for ``name: text_corpus`` (Texygen COCO and any sentence file).

    Attributes:
        train_path, test_path: one whitespace-tokenised sentence a line.
        path: one corpus file instead (``train_path`` / ``test_path`` are then ignored): its
            sentences are shuffled with ``split_seed`` and ``test_fraction`` of them held out.
        test_fraction: share of ``path``'s sentences held out as the test set (0 < f < 1).
        split_seed: seed of that split (fixed across run seeds: seeds vary models, not data).
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
        save_eval_samples: evaluation samples written per temperature to
            ``samples/eval-<stage>.jsonl`` (0: none).
    """

    train_path: str = "../shared/data/texygen_coco/image_coco.txt"
    test_path: str = "../shared/data/texygen_coco/test_coco.txt"
    path: str = ""
    test_fraction: float = 0.1
    split_seed: int = 0
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
    save_eval_samples: int = 100


def split_corpus(config: TextCorpusConfig) -> tuple[list[str], list[str]]:
    """(train, test) sentences: the two files, or ``path`` split by ``test_fraction``."""
    if not config.path:
        return (read_corpus(config.train_path, config.tokenize, config.max_train),
                read_corpus(config.test_path, config.tokenize, config.max_test))
    if not 0 < config.test_fraction < 1:
        raise ConfigError(f"task.test_fraction must be strictly between 0 and 1 (the share of "
                          f"task.path held out), got {config.test_fraction}")
    lines = read_corpus(config.path, config.tokenize, 0)
    order = np.random.default_rng(config.split_seed).permutation(len(lines))
    n_test = round(config.test_fraction * len(lines))
    if n_test < 1 or n_test >= len(lines):
        empty = "test" if n_test < 1 else "train"
        raise DataError(f"{config.path}: task.test_fraction={config.test_fraction} of "
                        f"{len(lines)} sentences leaves an empty {empty} split; use a larger "
                        f"file or another test_fraction.")
    test = [lines[i] for i in sorted(order[:n_test])]
    train = [lines[i] for i in sorted(order[n_test:])]
    return (train[: config.max_train or None], test[: config.max_test or None])


def read_corpus(path: str, tokenize: str, limit: int) -> list[str]:
    """Lines of ``path`` as space-joined tokens (``char`` splits every character)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"corpus file {file} not found (task.train_path / task.test_path / "
                        f"task.path)")
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

    def __init__(self, config: TextCorpusConfig, run_dir: Path | None = None) -> None:
        self.config = config
        self.run_dir = run_dir
        self._baselines: dict[str, float] | None = None
        self._warned: set[str] = set()
        train, test = split_corpus(config)
        self.train = [Sample(t, EMPTY) for t in train]
        self.test = [Sample(t, EMPTY) for t in test]
        refs = [s.text.split() for s in self.test]
        self.references = refs[: config.bleu_references] if config.bleu_references else refs
        self._rng = np.random.default_rng(config.seed)

    @functools.cached_property
    def counted_references(self) -> References:
        """The BLEU references' n-gram maxima, counted on first use (once per run)."""
        return References(self.references, max(self.config.bleu_orders))

    def quality_diversity(self, texts: Sequence[str]) -> dict[str, float]:
        """BLEU-n against the test set and self-BLEU-n of ``texts``, each with its bootstrap
        ``_se`` over the sentences (self-BLEU's terms are each sentence against the others of
        the set: the SE resamples those terms with the set held fixed — recomputing
        self-BLEU per resample would cost 200 self-BLEUs per evaluation)."""
        hyps = [t.split() for t in texts]
        own = hyps[: self.config.self_bleu_samples]
        out = {}
        for n in self.config.bleu_orders:
            scores = self.counted_references.sentence_bleus(hyps, n)
            own_scores = self_bleus(own, n)
            out[f"bleu{n}"] = float(np.mean(scores)) if scores else 0.0
            out[f"bleu{n}_se"] = mean_se(scores)
            out[f"self_bleu{n}"] = float(np.mean(own_scores)) if own_scores else 0.0
            out[f"self_bleu{n}_se"] = mean_se(own_scores)
        return out

    def held_out_real(self) -> list[str]:
        """Real sentences that are not references, as many as the model's samples: test
        sentences beyond ``bleu_references``, else training sentences (when every test
        sentence is a reference)."""
        n = self.config.num_eval_samples
        spare = [s.text for s in self.test[len(self.references):]]
        return spare[:n] if len(spare) >= n else [s.text for s in self.train[:n]]

    def baselines(self) -> dict[str, float]:
        """``baseline/unigram/{bleuN,self_bleuN,nll_test}`` and ``baseline/real/{bleuN,
        self_bleuN}`` with SEs, at the model's evaluation sizes; cached."""
        if self._baselines is None:
            unigram = Unigram([s.text.split() for s in self.train])
            drawn = unigram.sample(self.config.num_eval_samples, self.config.seed + 2)
            out: dict[str, float] = {}
            for name, texts in (("unigram", [" ".join(t) for t in drawn]),
                                ("real", self.held_out_real())):
                for key, value in self.quality_diversity(texts).items():
                    out[f"baseline/{name}/{key}"] = value
            held_out = self.test[: self.config.nll_test_max or None]
            rows = unigram.nll([s.text.split() for s in held_out])
            out["baseline/unigram/nll_test"] = _ratio(*rows)
            out["baseline/unigram/nll_test_se"] = ratio_se(*rows)
            self._baselines = out
        return self._baselines

    def evaluate(self, components: Components, stage: str) -> dict[str, float]:
        generator = components.generator
        if generator is None:
            return {}
        metrics: dict[str, float] = {}
        ses: dict[str, float] = {}
        rows: list[dict[str, Any]] = []
        for tau in _sweep(self.config.temperatures):
            texts = _sample_texts(
                generator, self.config.num_eval_samples, tau, self.config.eval_batch
            )
            for name, value in self.quality_diversity(texts).items():
                if name.endswith("_se"):
                    ses[f"{name[:-3]}{_suffix(tau)}"] = value
                else:
                    metrics[f"{name}{_suffix(tau)}"] = value
            held_out = self.test[: self.config.nll_test_max or None]
            nll_rows = nll_per_sample(generator, held_out, tau, self.config.eval_batch)
            metrics[f"nll_test{_suffix(tau)}"] = _ratio(*nll_rows)
            ses[f"nll_test{_suffix(tau)}"] = ratio_se(*nll_rows)
            metrics[f"mean_len{_suffix(tau)}"] = float(np.mean([len(t.split()) for t in texts]))
            rows += [{"phase": "evaluate", "stage": stage, "temperature": tau, "text": t}
                     for t in texts[: self.config.save_eval_samples]]
        write_eval_samples(self.run_dir, stage, rows)
        warn = [f"bleu{n}" for n in self.config.bleu_orders]
        metrics = with_uncertainty(metrics, ses, warn_keys=warn, warned=self._warned)
        return {**metrics, **self.baselines()}


def build_text_corpus(config: TextCorpusConfig, ctx: BuildContext) -> TextCorpusTask:
    _check_eval_keys(config)
    if config.tokenize not in ("whitespace", "char"):
        raise ConfigError(f"task.tokenize must be 'whitespace' or 'char', got {config.tokenize!r}")
    return TextCorpusTask(config, run_dir=ctx.run_dir)


__all__ = [
    "OracleLMConfig",
    "OracleLMTask",
    "TextCorpusConfig",
    "TextCorpusTask",
    "UnconditionalLMTask",
    "build_oracle_lm",
    "build_text_corpus",
]
