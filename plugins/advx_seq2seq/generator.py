"""Encoder-decoder policy: any Hugging Face seq2seq LM (FLAN-T5 in the paper) plus a value head.

The policy is π_θ(a_t | prompt, a_<t) = softmax(logits_t) of the decoder at temperature 1, over
the tokens ``generate`` may write (``generation_config.suppress_tokens`` are masked everywhere).
Sampling may use another temperature (exploration only): ``Rollout.logprobs``, the reference's
log-probs and :meth:`Seq2SeqGenerator.policy_outputs` are all log π_θ at temperature 1, so the
PPO ratio is exactly 1 right after sampling and the KL penalty compares the same distributions.

Dropout is disabled outside :meth:`sft` (the model stays in ``eval()`` mode during RL, gradients
still flow), so the teacher-forced log-probs of the update equal the behaviour log-probs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from advx.components import BuildContext, PolicyOutputs
from advx.errors import ConfigError
from advx.generator_kit import SFTLoop, check_minimums, frozen_reference
from advx.lora import LoRAKeys, apply_lora
from advx.memory import CheckpointingKeys, enable_gradient_checkpointing
from advx.microbatch import AccumulationConfig
from advx.numerics import adamw
from advx.rollout import Prompt, Rollout, Sample, SequenceNLL, mask_through_eos, shift_right
from advx.schedules import ScheduleConfig
from advx_hf.constrained import CatalogueTrie, TrieConstraint, beam_rows
from torch import Tensor, nn
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
    T5ForConditionalGeneration,
)
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

from advx_seq2seq.bert2bert import (
    encode_targets,
    is_bert2bert,
    load_bert2bert,
    uses_cls_sep_targets,
)

__all__ = ["Seq2SeqConfig", "Seq2SeqGenerator", "build_seq2seq"]

VALUE_HEAD_FILE = "value_head.pt"
SCORE_CHUNK_ROWS = 512  # rows per teacher-forced scoring pass (bounds the [rows, T, V] logits)


@dataclass
class Seq2SeqConfig(ScheduleConfig, AccumulationConfig, LoRAKeys, CheckpointingKeys):
    """The ``generator:`` block for ``name: seq2seq``.

    Attributes:
        model: a hub id (``google/flan-t5-small``), a local directory written by
            ``save_pretrained``/``Seq2SeqGenerator.save``, ``tiny`` (a small T5 built from the
            size keys below with a tokenizer trained on the task's texts, saved in the run dir),
            or ``bert2bert:minilm`` / ``bert2bert:<BERT-like checkpoint>`` (an encoder-decoder
            warm-started from a pretrained encoder, offline: :mod:`advx_seq2seq.bert2bert`).
        prompt_template: Python format string for the encoder input; ``{text}`` is
            ``Prompt.text`` (the task already renders product fields and label into it), other
            names are looked up in ``Prompt.meta``.
        max_prompt_tokens: encoder inputs are truncated to this many tokens.
        max_new_tokens: longest response (EOS included); also truncates SFT targets.
        top_k, top_p: sampling filters (0 / 1.0 = sample from the full distribution).
        epochs, lr, batch_size, weight_decay: SFT (teacher forcing, AdamW kept across calls).
        max_grad_norm: gradient-norm clip of SFT steps (0 = off).
        value_head: add a linear value head V(s_t) on the decoder's last hidden state (PPO).
        dropout: dropout rate of a ``tiny`` model (and passed to a loaded T5 config).
        d_model, num_layers, num_heads, d_kv, d_ff, vocab_size, tokenizer: ``tiny`` sizes.
        lr_scheduler, warmup_steps, warmup_ratio, schedule_steps: learning-rate schedule of
            each ``sft`` call (:class:`advx.schedules.ScheduleConfig`).
        grad_accum_steps: micro-batches per SFT minibatch (:mod:`advx.microbatch`; 1 = none).
        length_bucketed: SFT minibatches of near-equal length (a bucket iterator,
            :func:`advx.generator_kit.epoch_batches`): less padding; False = uniform order.
        lora: ``{r, alpha, dropout, target_modules}`` to train a LoRA adapter through peft
            instead of every weight; π_ref is then the model with the adapter disabled
            (:mod:`advx.lora`). null (default) = full fine-tuning.
        gradient_checkpointing: recompute each transformer layer in the backward pass
            instead of storing its activations (:mod:`advx.memory`; updates are unchanged).
    """

    model: str = "tiny"
    prompt_template: str = "{text}"
    max_prompt_tokens: int = 128
    max_new_tokens: int = 16
    top_k: int = 0
    top_p: float = 1.0
    epochs: int = 3
    lr: float = 3.0e-4
    batch_size: int = 16
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    length_bucketed: bool = False
    value_head: bool = True
    dropout: float = 0.0
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_kv: int = 16
    d_ff: int = 128
    vocab_size: int = 2000
    tokenizer: str = "bpe"


class _ForcePrefix(LogitsProcessor):
    """Forces row m to emit ``prefix[m, t]`` at decoding step t while ``t < lengths[m]``.

    No library processor forces a different token sequence per row (``force_words_ids`` is a
    beam-search constraint), hence this one. Forcing keeps every Monte-Carlo continuation in one
    ``generate`` call with the KV cache, however the prefix lengths differ.
    """

    def __init__(self, prefix: Tensor, lengths: Tensor) -> None:
        self.prefix = prefix
        self.lengths = lengths

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - 1  # decoder inputs start with the decoder start token
        if step >= self.prefix.shape[1]:
            return scores
        forced = self.lengths > step
        if not bool(forced.any()):
            return scores
        rows = forced.nonzero(as_tuple=True)[0]
        scores = scores.clone()  # never in place: generate keeps the raw logits it passed in
        scores[rows] = -math.inf
        scores[rows, self.prefix[rows, step]] = 0.0
        return scores


class Seq2SeqGenerator:
    """A seq2seq policy satisfying :class:`advx.components.Generator`."""

    def __init__(
        self,
        config: Seq2SeqConfig,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: str = "cpu",
        value_head: nn.Linear | None = None,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.value_head = value_head.to(self.device) if value_head is not None else None
        self._reference: Seq2SeqGenerator | None = None
        self._sft: SFTLoop | None = SFTLoop.from_config("seq2seq", self.model, config,
                                                         optimizer=adamw)
        self.pad_id = int(model.config.pad_token_id)
        self.eos_id = int(model.config.eos_token_id)
        self.start_id = int(model.config.decoder_start_token_id)
        # BERT2BERT targets are "w_1 … w_n [SEP]": no leading [CLS] (it is the start token)
        self._cls_sep_targets = uses_cls_sep_targets(model, tokenizer)
        self._trie = CatalogueTrie()  # beam_search's allowed responses
        # tokens generate() never writes (e.g. BERT's [unusedN] slots): the policy's support
        never = getattr(getattr(model, "generation_config", None), "suppress_tokens", None)
        self._suppressed = (torch.tensor(sorted(never), dtype=torch.long, device=self.device)
                            if never else None)

    # ----------------------------------------------------------------- encoding
    def _render(self, prompt: Prompt) -> str:
        try:
            return self.config.prompt_template.format_map({**prompt.meta, "text": prompt.text})
        except KeyError as exc:
            raise ConfigError(
                f"generator.prompt_template {self.config.prompt_template!r} names {exc}, which "
                f"is neither 'text' nor a key of the task's prompt meta {sorted(prompt.meta)}."
            ) from None

    def _encode_prompts(self, prompts: Sequence[Prompt]) -> tuple[Tensor, Tensor]:
        enc = self.tokenizer(
            [self._render(p) for p in prompts],
            padding=True,
            truncation=True,
            max_length=self.config.max_prompt_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def _encode_targets(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        if self._cls_sep_targets:
            ids, mask = encode_targets(self.tokenizer, texts, self.config.max_new_tokens)
            return ids.to(self.device), mask.to(self.device)
        enc = self.tokenizer(
            text_target=list(texts),
            padding=True,
            truncation=True,
            max_length=self.config.max_new_tokens,
            return_tensors="pt",
        )
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def _decode(self, ids: Tensor, mask: Tensor) -> list[str]:
        rows = [row[m.bool()].tolist() for row, m in zip(ids, mask, strict=True)]
        return [t.strip() for t in self.tokenizer.batch_decode(rows, skip_special_tokens=True)]

    # ---------------------------------------------------------------- forward
    def _forward(
        self, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        """Teacher-forced logits ``[B,T,V]`` and (with a value head) values ``[B,T]``."""
        out = self.model(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            decoder_input_ids=shift_right(response_ids, self.start_id),
            output_hidden_states=self.value_head is not None,
            use_cache=False,
        )
        values = None
        if self.value_head is not None:
            values = self.value_head(out.decoder_hidden_states[-1]).squeeze(-1)
        logits = out.logits
        if self._suppressed is not None:  # π_θ is the distribution generate() samples from
            # the dtype's minimum, not -inf: 0 · (-inf) would make the entropy NaN
            logits = logits.index_fill(-1, self._suppressed, torch.finfo(logits.dtype).min)
        return logits, values

    def policy_outputs(self, rollout: Rollout) -> PolicyOutputs:
        """log π_θ(a_t|s_t), entropy and V(s_t) ``[B,T]`` (zero on padding), with grad."""
        logits, values = self._forward(
            rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids
        )
        mask = rollout.response_mask.to(logits.dtype)
        logprobs = selective_log_softmax(logits, rollout.response_ids) * mask
        entropy = entropy_from_logits(logits) * mask
        return PolicyOutputs(
            logprobs=logprobs,
            entropy=entropy,
            values=None if values is None else values * mask,
        )

    def _batch_nll(
        self, samples: Sequence[Sample], temperature: float = 1.0
    ) -> tuple[Tensor, Tensor]:
        """``[N]`` summed token NLL of each target given its prompt, and ``[N]`` token counts."""
        prompts = [s.prompt or Prompt("") for s in samples]
        prompt_ids, prompt_mask = self._encode_prompts(prompts)
        target_ids, target_mask = self._encode_targets([s.text for s in samples])
        logits, _ = self._forward(prompt_ids, prompt_mask, target_ids)
        if temperature != 1.0:
            logits = logits / temperature
        token_logp = selective_log_softmax(logits, target_ids)
        return -(token_logp * target_mask.to(token_logp.dtype)).sum(-1), target_mask.sum(-1)

    def nll(self, samples: Sequence[Sample], temperature: float = 1.0) -> SequenceNLL:
        """Teacher-forced NLL of ``sample.text`` given ``sample.prompt`` under the policy at
        ``temperature`` (softmax(logits/τ)), with grad, and each target's token count (EOS
        included, after truncation to ``max_new_tokens``)."""
        total, tokens = self._batch_nll(samples, temperature)
        return SequenceNLL(total=total, tokens=tokens)

    # -------------------------------------------------------------------- SFT
    def sft(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Teacher-forced MLE (token-mean cross-entropy), see :class:`advx.generator_kit.SFTLoop`.

        Dropout (if configured) is active during SFT only."""
        if self._sft is None:
            raise ConfigError("the reference policy is frozen: sft() must not be called on it")

        def batch_loss(batch: Sequence[Sample]) -> tuple[Tensor, Tensor]:
            total, tokens = self._batch_nll(batch)
            return total.sum(), tokens.sum()

        self.model.train()
        try:
            return self._sft.run(samples, batch_loss)
        finally:
            self.model.eval()

    # --------------------------------------------------------------- sampling
    def _generate(
        self,
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        temperature: float,
        max_new_tokens: int,
        logits_processor: LogitsProcessorList | None = None,
        use_cache: bool = True,
        n: int = 1,
    ) -> Any:
        """``n`` samples per prompt row, prompt-major (``generate`` runs the encoder once per
        row and repeats its output for the ``n`` samples)."""
        return self.model.generate(
            input_ids=prompt_ids,
            attention_mask=prompt_mask,
            num_return_sequences=n,
            do_sample=True,
            temperature=temperature,
            top_k=self.config.top_k,
            top_p=self.config.top_p,
            max_new_tokens=max_new_tokens,
            use_cache=use_cache,
            logits_processor=logits_processor,
            return_dict_in_generate=True,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_id,
            decoder_start_token_id=self.start_id,
        )

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[Prompt],
        n: int = 1,
        temperature: float = 1.0,
        use_cache: bool = True,
    ) -> Rollout:
        """``n`` samples per prompt (prompt-major rows), KV-cached ``generate``; each prompt is
        encoded once for its ``n`` samples (GRPO's groups).

        Behaviour log-probs (and values) are recomputed in a teacher-forced pass rather than
        read from ``generate``'s processed ``scores`` (those are tempered/filtered): this is the
        very code path of :meth:`policy_outputs`, so the first PPO ratio is exactly 1.
        ``use_cache=False`` exists only for the benchmark's cache check.
        """
        prompt_ids, prompt_mask = self._encode_prompts(list(prompts))
        out = self._generate(
            prompt_ids, prompt_mask, temperature, self.config.max_new_tokens,
            use_cache=use_cache, n=n,
        )
        response_ids = out.sequences[:, 1:]  # drop the decoder start token
        rows = [p for p in prompts for _ in range(n)]
        return self._rollout(rows, prompt_ids.repeat_interleave(n, 0),
                             prompt_mask.repeat_interleave(n, 0), response_ids, n)

    def _rollout(
        self,
        prompts: list[Prompt],
        prompt_ids: Tensor,
        prompt_mask: Tensor,
        response_ids: Tensor,
        n: int,
        with_values: bool = True,
    ) -> Rollout:
        """Mask, pad after EOS, score teacher-forced (in row chunks) and decode."""
        mask = mask_through_eos(response_ids, self.eos_id)
        response_ids = response_ids.masked_fill(mask == 0, self.pad_id)
        logprob_parts, value_parts = [], []
        for start in range(0, len(prompts), SCORE_CHUNK_ROWS):
            part = slice(start, start + SCORE_CHUNK_ROWS)
            logits, values = self._forward(prompt_ids[part], prompt_mask[part], response_ids[part])
            logprob_parts.append(selective_log_softmax(logits, response_ids[part]))
            value_parts.append(values)
        values = None
        if with_values and self.value_head is not None:
            values = torch.cat(value_parts) * mask
        group_ids = torch.arange(len(prompts), device=self.device) // n
        return Rollout(
            prompts=prompts,
            prompt_ids=prompt_ids,
            prompt_mask=prompt_mask,
            response_ids=response_ids,
            response_mask=mask,
            logprobs=torch.cat(logprob_parts) * mask,
            texts=self._decode(response_ids, mask),
            group_ids=group_ids,
            values=values,
        )

    @torch.no_grad()
    def complete(self, rollout: Rollout, rows: Tensor, prefix_lengths: Tensor) -> Rollout:
        """Monte-Carlo continuations of response prefixes in ONE ``generate`` call.

        Row m starts from scratch on ``rollout``'s prompt ``rows[m]``; a logits processor forces
        its first ``prefix_lengths[m]`` tokens to the rollout's, then it samples freely (at
        temperature 1), all rows sharing the KV-cached decoding loop. A prefix that already
        holds EOS ends there, so the completion is the original response. Log-probs are log π_θ
        from a teacher-forced pass in chunks of rows (forced tokens are scored under the model,
        not the forcing; ``output_logits`` would hold M×T×V floats at once, too much for
        M = B·N·T rows). ``group_ids`` of the result are ``rows``; ``values`` is None.
        """
        rows = torch.as_tensor(rows, dtype=torch.long, device=self.device)
        lengths = torch.as_tensor(prefix_lengths, dtype=torch.long, device=self.device)
        prefix = rollout.response_ids[rows]
        prompt_ids, prompt_mask = rollout.prompt_ids[rows], rollout.prompt_mask[rows]
        forcing = LogitsProcessorList([_ForcePrefix(prefix, lengths)])
        out = self._generate(
            prompt_ids,
            prompt_mask,
            temperature=1.0,
            max_new_tokens=self.config.max_new_tokens,
            logits_processor=forcing,
        )
        result = self._rollout(
            [rollout.prompts[i] for i in rows.tolist()],
            prompt_ids,
            prompt_mask,
            out.sequences[:, 1:],
            n=1,
            with_values=False,
        )
        result.group_ids = rows.clone()
        return result

    @torch.no_grad()
    def beam_search(self, prompts: Sequence[Prompt], k: int,
                    allowed: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Top-``k`` responses per prompt by beam search: ``[(text, sequence log-prob), ...]``
        (:class:`advx.components.SupportsBeamSearch`; ``generate`` encodes each prompt once
        and repeats the encoder's output for its beams). ``allowed``: only these response
        texts may be produced (a prefix trie over their target token ids,
        :class:`advx_hf.constrained.TrieConstraint`), as TIGER's generative retrieval decodes
        valid item codes only."""
        prompt_ids, prompt_mask = self._encode_prompts(list(prompts))
        processors = LogitsProcessorList()
        if allowed is not None:
            trie = self._trie.get(allowed, self._target_ids, len(self.tokenizer), self.device)
            processors.append(TrieConstraint(trie, 1, self.eos_id))  # after the start token
        out = self.model.generate(
            input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=False, num_beams=k,
            num_return_sequences=k, max_new_tokens=self.config.max_new_tokens,
            pad_token_id=self.pad_id, eos_token_id=self.eos_id,
            decoder_start_token_id=self.start_id, early_stopping=True, length_penalty=0.0,
            output_scores=True, return_dict_in_generate=True, logits_processor=processors,
        )
        response = out.sequences[:, 1:]  # drop the decoder start token
        mask = mask_through_eos(response, self.eos_id)
        texts = self._decode(response.masked_fill(mask == 0, self.pad_id), mask)
        return beam_rows(texts, out.sequences_scores.tolist(), k)

    def _target_ids(self, text: str) -> list[int]:
        """``text`` as the decoder writes it: target token ids through its eos."""
        ids, mask = self._encode_targets([text])
        return ids[0][mask[0].bool()].tolist()

    # ------------------------------------------------------------- reference
    def reference(self) -> Seq2SeqGenerator:
        """π_ref: see :func:`advx.generator_kit.frozen_reference` (no value head)."""
        if self._reference is None:
            self._reference = frozen_reference(self, value_head=None)
        return self._reference

    # ------------------------------------------------------------- state
    def parameters(self) -> list[nn.Parameter]:
        params = list(self.model.parameters())
        if self.value_head is not None:
            params += list(self.value_head.parameters())
        return [p for p in params if p.requires_grad]

    def value_parameters(self) -> list[nn.Parameter]:
        """The value head's parameters (a subset of :meth:`parameters`; optional, not in the
        Generator protocol): PPO gives them their own learning rate (``optimizer.value_lr``)."""
        if self.value_head is None:
            return []
        return [p for p in self.value_head.parameters() if p.requires_grad]

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": self.model.state_dict()}
        if self.value_head is not None:
            state["value_head"] = self.value_head.state_dict()
        return state if self._sft is None else self._sft.save_into(state)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.value_head is not None and "value_head" in state:
            self.value_head.load_state_dict(state["value_head"])
        if self._sft is not None:
            self._sft.load_from(state)

    def save(self, path: Path) -> None:
        """``save_pretrained`` model and tokenizer (+ value head) so ``model: <path>`` reloads."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        if self.value_head is not None:
            torch.save(self.value_head.state_dict(), path / VALUE_HEAD_FILE)


    def export(self, path: Path) -> None:
        """``advx export``: a Hugging Face directory that ``AutoModelForSeq2SeqLM`` and
        ``AutoTokenizer`` load with ``from_pretrained(path)`` (safetensors), the value head
        (PPO) as ``value_head.safetensors`` + ``value_head.json`` (a ``torch.nn.Linear`` on
        the decoder's last hidden state), and ``advx.json`` (prompt template, lengths).
        A LoRA generator (``lora:``) is written merged (a copy; the policy keeps its adapter),
        its adapter in peft's format under ``adapter/`` (and the random base of a ``tiny``
        model under ``base/``)."""
        from advx_hf import (
            export_lora,
            export_pretrained,
            has_adapters,
            save_module,
            without_adapters,
        )

        lora = has_adapters(self.model)
        entries = export_lora(self.model, self.tokenizer, path, self.config.model) if lora else {}
        export_pretrained(without_adapters(self.model, merge=True) if lora else self.model,
                          self.tokenizer, path, {
            "kind": "generator", "architecture": "seq2seq",
            "prompt_template": self.config.prompt_template,
            "max_prompt_tokens": self.config.max_prompt_tokens,
            "max_new_tokens": self.config.max_new_tokens,
            "top_k": self.config.top_k, "top_p": self.config.top_p, **entries,
        })
        if self.value_head is not None:
            save_module(self.value_head, path, "value_head", {
                "module": "torch.nn.Linear", "in_features": self.value_head.in_features,
                "out_features": self.value_head.out_features,
                "input": "decoder last hidden state at each response token",
            })


# ------------------------------------------------------------------ building
def _tiny_model(config: Seq2SeqConfig, ctx: BuildContext) -> tuple[PreTrainedModel, Any]:
    """A small random T5 and a tokenizer trained on ``ctx.task.texts()``."""
    from advx_hf import train_tokenizer

    if ctx.task is None:
        raise ConfigError(
            "generator.model: tiny trains its tokenizer on the task's texts, "
            "but no task was built before the generator."
        )
    texts = list(ctx.task.texts())
    if not texts:
        raise ConfigError(
            "generator.model: tiny needs texts to train a tokenizer on, but the "
            "task's texts() is empty."
        )
    tokenizer = train_tokenizer(texts, vocab_size=config.vocab_size, kind=config.tokenizer)
    torch.manual_seed(ctx.seed)
    t5 = T5Config(
        vocab_size=len(tokenizer),
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        num_layers=config.num_layers,
        num_decoder_layers=config.num_layers,
        num_heads=config.num_heads,
        dropout_rate=config.dropout,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    return T5ForConditionalGeneration(t5), tokenizer


def _pretrained(config: Seq2SeqConfig, name_or_path: str) -> tuple[PreTrainedModel, Any]:
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForSeq2SeqLM.from_pretrained(name_or_path)
    except OSError as exc:
        raise ConfigError(
            f"generator.model {name_or_path!r}: could not load a seq2seq model and tokenizer "
            f"({exc}). Give a local directory written by save_pretrained, a hub id reachable "
            f"from this machine, 'tiny', or 'bert2bert:minilm' (pretrained, offline)."
        ) from None
    if hasattr(model.config, "dropout_rate"):  # T5 family: RL wants deterministic forwards
        model.config.dropout_rate = config.dropout
        for module in model.modules():
            if isinstance(module, nn.Dropout):
                module.p = config.dropout
    if model.config.decoder_start_token_id is None:
        model.config.decoder_start_token_id = tokenizer.pad_token_id
    tokenizer.padding_side = "right"
    return model, tokenizer


def build_seq2seq(config: Seq2SeqConfig, ctx: BuildContext) -> Seq2SeqGenerator:
    """Factory: a tiny T5 (saved under ``<run_dir>/generator-tiny`` and reloaded from there on
    resume), a BERT2BERT warm start (``bert2bert:<checkpoint>``, rebuilt from the checkpoint
    under the run's seed; a resume then loads the trained weights from the run's checkpoint),
    or any seq2seq model by hub id / local path."""
    check_minimums("generator", config, {
        "batch_size": 1, "max_new_tokens": 1, "max_prompt_tokens": 1, "epochs": 0,
        "lr": 0.0, "max_grad_norm": 0, "vocab_size": 8, "d_model": 1, "num_layers": 1,
        "num_heads": 1, "d_kv": 1, "d_ff": 1,
    })
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"generator.dropout must be in [0, 1), got {config.dropout}")
    if config.tokenizer not in ("bpe", "word"):
        raise ConfigError(f"generator.tokenizer must be 'bpe' or 'word', got {config.tokenizer!r}")
    if config.top_k < 0:
        raise ConfigError(f"generator.top_k must be ≥ 0 (0 = off), got {config.top_k}")
    if not 0.0 <= config.top_p <= 1.0:
        raise ConfigError(f"generator.top_p must be in [0, 1] (1 = off), got {config.top_p}")
    tiny_dir = Path(ctx.run_dir) / "generator-tiny"
    if config.model == "tiny" and not (tiny_dir / "config.json").exists():
        model, tokenizer = _tiny_model(config, ctx)
        model.save_pretrained(tiny_dir)
        tokenizer.save_pretrained(tiny_dir)
    name_or_path = str(tiny_dir) if config.model == "tiny" else config.model
    from advx_hf import loading

    with loading(ctx.quiet):
        if is_bert2bert(config.model):
            model, tokenizer = load_bert2bert(config.model, ctx.seed)
            tokenizer.padding_side = "right"
        else:
            model, tokenizer = _pretrained(config, name_or_path)
    model = apply_lora(model, config.lora, "SEQ_2_SEQ_LM", "generator")
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model, "generator")
    value_head = None
    if config.value_head:
        torch.manual_seed(ctx.seed)
        decoder_config = getattr(model.config, "decoder", model.config)  # EncoderDecoderConfig
        value_head = nn.Linear(decoder_config.hidden_size, 1)
        nn.init.zeros_(value_head.weight)
        nn.init.zeros_(value_head.bias)
        head_file = Path(name_or_path) / VALUE_HEAD_FILE
        if head_file.exists():
            value_head.load_state_dict(torch.load(head_file, map_location="cpu"))
    return Seq2SeqGenerator(config, model, tokenizer, ctx.device, value_head)
