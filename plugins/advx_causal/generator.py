"""Generator ``causal``: any decoder-only ``AutoModelForCausalLM`` as an advx policy.

Layout of one sequence (prompts LEFT-padded, responses RIGHT-padded, as decoder-only
generation needs the prompt to end at the same column for every row)::

    [pad … pad | prompt tokens | sep] [response tokens … eos | pad … pad]
     └──────────── prompt_ids [B, P] ───┘ └──────── response_ids [B, T] ──────┘

``sep`` is the tokenizer's BOS (or EOS when it has none): it marks where the answer starts,
so an empty prompt still gives the model a first position to predict from. Position ids are
recomputed from the attention mask (``cumsum - 1``) in every teacher-forced pass, exactly as
``generate`` does for left-padded inputs, so sampled and recomputed log-probs agree.

``model: tiny`` builds a small ``LlamaConfig`` (or ``GPT2Config``) model with random weights and a
tokenizer trained on the task's texts by ``advx_hf.train_tokenizer``; any other value is
a hub id or local directory loaded with ``from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from advx.choices import Choice
from advx.components import BuildContext, PolicyOutputs
from advx.errors import ConfigError
from advx.generator_kit import ModelState, SFTLoop, check_minimums
from advx.lora import LoRAKeys, apply_lora
from advx.memory import CheckpointingKeys, enable_gradient_checkpointing
from advx.microbatch import AccumulationConfig
from advx.rollout import (
    Prompt,
    Rollout,
    Sample,
    SequenceNLL,
    left_pad,
    mask_through_eos,
    right_pad,
)
from advx.schedules import ScheduleConfig
from advx_hf.constrained import CatalogueTrie, TrieConstraint, beam_rows
from torch import Tensor
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GPT2Config,
    LlamaConfig,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from trl.trainer.utils import entropy_from_logits, selective_log_softmax

__all__ = ["CausalConfig", "CausalGenerator", "build_causal"]


class CausalArch(Choice):
    """``generator.arch`` of the tiny causal model."""

    llama = "llama"
    gpt2 = "gpt2"


@dataclass
class CausalConfig(ScheduleConfig, AccumulationConfig, LoRAKeys, CheckpointingKeys):
    """The ``generator:`` block for ``name: causal``.

    Attributes:
        model: ``tiny`` (random weights from a config) or a hub id / local path.
        arch: architecture of the tiny model: ``llama`` or ``gpt2``.
        tokenizer: ``word`` (one id per whitespace token: item ids, semantic-id codes) or
            ``bpe``; used only for ``tiny``.
        vocab_size: upper bound on the trained tokenizer's vocabulary (tiny only).
        d_model, num_layers, num_heads: tiny model size.
        max_prompt_tokens: prompts are truncated from the LEFT to this many tokens (the most
            recent context is kept).
        max_new_tokens: longest sampled response.
        lr, epochs, batch_size: supervised fine-tuning (``sft``; AdamW kept across calls).
        weight_decay: AdamW weight decay for ``sft``.
        max_grad_norm: gradient-norm clip of ``sft`` steps (0 = off).
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
    arch: CausalArch = CausalArch.llama
    tokenizer: str = "word"
    vocab_size: int = 20000
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_prompt_tokens: int = 64
    max_new_tokens: int = 8
    lr: float = 1e-3
    epochs: int = 1
    batch_size: int = 64
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    length_bucketed: bool = False


def _tiny_model(config: CausalConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    positions = config.max_prompt_tokens + config.max_new_tokens + 2
    common = dict(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    if config.arch == "llama":
        hf_config = LlamaConfig(
            hidden_size=config.d_model,
            intermediate_size=4 * config.d_model,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads,
            max_position_embeddings=positions,
            tie_word_embeddings=True,
            **common,
        )
    else:  # gpt2
        hf_config = GPT2Config(
            n_embd=config.d_model, n_layer=config.num_layers, n_head=config.num_heads,
            n_positions=positions, **common,
        )
    return AutoModelForCausalLM.from_config(hf_config)


class CausalGenerator(ModelState):
    """A decoder-only policy (see the module docstring for the token layout)."""

    prompt_padding_side = "left"
    """Rollout prompts are left-padded: :func:`advx.distributed.gather_rollouts` keeps that."""

    def __init__(
        self,
        config: CausalConfig,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        device: str = "cpu",
    ) -> None:
        self.config = config
        # Always in eval mode: no dropout, so sampled, recomputed and reference log-probs
        # agree (RL ratios need that); sft trains without dropout too.
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        if tokenizer.pad_token_id is None:  # e.g. GPT-2: reuse EOS for padding
            tokenizer.pad_token = tokenizer.eos_token
        self.pad_id = int(tokenizer.pad_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        bos = tokenizer.bos_token_id
        self.sep_id = int(bos if bos is not None else self.eos_id)
        self._reference: CausalGenerator | None = None
        self._sft: SFTLoop | None = SFTLoop.from_config("causal", self.model, config)
        self._trie = CatalogueTrie()  # beam_search's allowed responses

    # ---------------------------------------------------------------- encoding
    def _prompt_tokens(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        keep = self.config.max_prompt_tokens - 1
        ids = ids[-keep:] if keep > 0 else []
        return [*ids, self.sep_id]

    def _target_tokens(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        return [*ids[: self.config.max_new_tokens - 1], self.eos_id]

    def encode_prompts(self, prompts: Sequence[Prompt]) -> tuple[Tensor, Tensor]:
        """``[B, P]`` left-padded prompt ids and mask (each prompt ends with ``sep``)."""
        ids, mask = left_pad([self._prompt_tokens(p.text) for p in prompts], self.pad_id)
        return ids.to(self.device), mask.to(self.device)

    def decode(self, response_ids: Tensor, response_mask: Tensor) -> list[str]:
        pairs = zip(response_ids, response_mask, strict=True)
        rows = [ids[mask.bool()].tolist() for ids, mask in pairs]
        return [t.strip() for t in self.tokenizer.batch_decode(rows, skip_special_tokens=True)]

    # ---------------------------------------------------------------- teacher forcing
    def _forward_logits(
        self, prompt_ids: Tensor, prompt_mask: Tensor, response_ids: Tensor, response_mask: Tensor
    ) -> Tensor:
        """``[B, T, V]`` logits predicting each response token, positions from the mask."""
        input_ids = torch.cat([prompt_ids, response_ids], dim=1)
        attention = torch.cat([prompt_mask, response_mask], dim=1)
        # Padding after EOS is masked out but still needs a position: keep counting.
        attention_for_pos = torch.cat([prompt_mask, torch.ones_like(response_mask)], dim=1)
        position_ids = (attention_for_pos.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids)
        width = prompt_ids.shape[1]
        return out.logits[:, width - 1 : -1, :].float()

    def policy_outputs(self, rollout: Rollout) -> PolicyOutputs:
        logits = self._forward_logits(
            rollout.prompt_ids, rollout.prompt_mask, rollout.response_ids, rollout.response_mask
        )
        logprobs = selective_log_softmax(logits, rollout.response_ids)
        entropy = entropy_from_logits(logits)
        mask = rollout.response_mask.to(logprobs.dtype)
        return PolicyOutputs(logprobs=logprobs * mask, entropy=entropy * mask)

    def _pairs(self, samples: Sequence[Sample]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        prompt_ids, prompt_mask = left_pad(
            [self._prompt_tokens(s.prompt.text if s.prompt else "") for s in samples], self.pad_id
        )
        target_ids, target_mask = right_pad(
            [self._target_tokens(s.text) for s in samples], self.pad_id
        )
        return tuple(t.to(self.device) for t in (prompt_ids, prompt_mask, target_ids, target_mask))

    def nll(self, samples: Sequence[Sample], temperature: float = 1.0) -> SequenceNLL:
        """Teacher-forced NLL of ``sample.text`` given ``sample.prompt`` under the policy at
        ``temperature`` (softmax(logits/τ)), with grad, and each target's token count (EOS
        included, after truncation to ``max_new_tokens``)."""
        prompt_ids, prompt_mask, target_ids, target_mask = self._pairs(samples)
        logits = self._forward_logits(prompt_ids, prompt_mask, target_ids, target_mask)
        if temperature != 1.0:
            logits = logits / temperature
        logprobs = selective_log_softmax(logits, target_ids)
        return SequenceNLL(total=-(logprobs * target_mask).sum(-1), tokens=target_mask.sum(-1))

    def sft(self, samples: Sequence[Sample]) -> dict[str, float]:
        """Token-mean cross-entropy on ``prompt -> text``, see
        :class:`advx.generator_kit.SFTLoop` (the model stays in eval mode: no dropout)."""
        if self._sft is None:
            raise ConfigError("the reference policy is frozen: sft() must not be called on it")

        def batch_loss(batch: Sequence[Sample]) -> tuple[Tensor, Tensor]:
            nll = self.nll(batch)
            return nll.total.sum(), nll.tokens.sum()

        return self._sft.run(samples, batch_loss)

    # ---------------------------------------------------------------- sampling
    def _shared_prompt_cache(self, input_ids: Tensor, attention: Tensor,
                             copies: int) -> dict[str, object]:
        """``generate`` keyword arguments that encode each prompt once for ``copies`` rows.

        ``generate`` repeats every prompt ``copies`` times (beams, or samples per prompt)
        *before* its first forward, so the prompt pass costs ``copies`` times what it must:
        86 % of a 10-beam search of 42-token prompts on CPU. This pass runs the prompt's
        first ``P - 1`` columns once, with ``generate``'s own positions (``cumsum - 1`` of the
        left-padded mask), and repeats the key/value cache instead; ``generate`` then feeds
        only the last prompt column. Same sequences and scores as without (tested).

        Nothing (``generate``'s own path) where a passed cache cannot stand in for the one
        ``generate`` would build: a model whose generation config names a
        ``cache_implementation`` (static / hybrid caches: ``generate`` refuses a ``cache``
        beside it) or whose cache is not a plain attention ``DynamicCache`` (recurrent or
        linear-attention layers).
        """
        if copies < 2 or input_ids.shape[1] < 2:
            return {}
        generation_config = getattr(self.model, "generation_config", None)
        if getattr(generation_config, "cache_implementation", None) is not None:
            return {}
        head, mask = input_ids[:, :-1], attention[:, :-1]
        with torch.no_grad():
            out = self.model(input_ids=head, attention_mask=mask,
                             position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=True)
        cache = getattr(out, "cache", None)
        if not isinstance(cache, DynamicCache) or any(cache.is_linear):
            return {}
        cache.batch_repeat_interleave(copies)
        return {"cache": cache}

    def _generate(self, input_ids: Tensor, attention: Tensor, n: int, temperature: float,
                  max_new_tokens: int) -> Tensor:
        with torch.no_grad():
            out = self.model.generate(
                **self._shared_prompt_cache(input_ids, attention, n),
                input_ids=input_ids,
                attention_mask=attention,
                do_sample=True,
                temperature=max(temperature, 1e-5),
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=n,
                pad_token_id=self.pad_id,
                eos_token_id=self.eos_id,
                use_cache=True,
            )
        return out[:, input_ids.shape[1]:]

    def _rollout(self, prompts: list[Prompt], prompt_ids: Tensor, prompt_mask: Tensor,
                 response_ids: Tensor, group_ids: Tensor) -> Rollout:
        if response_ids.shape[1] == 0:  # generate returned nothing: one EOS per row
            response_ids = torch.full((len(prompts), 1), self.eos_id, device=self.device)
        response_mask = mask_through_eos(response_ids, self.eos_id)
        response_ids = response_ids.masked_fill(response_mask == 0, self.pad_id)
        rollout = Rollout(
            prompts=prompts, prompt_ids=prompt_ids, prompt_mask=prompt_mask,
            response_ids=response_ids, response_mask=response_mask,
            logprobs=torch.zeros(response_ids.shape, device=self.device),
            texts=self.decode(response_ids, response_mask), group_ids=group_ids,
        )
        # Behaviour log-probs recomputed teacher-forced at temperature 1 (the policy π_θ_old
        # that ratios are taken against), not from generate's processed scores.
        with torch.no_grad():
            rollout.logprobs = self.policy_outputs(rollout).logprobs.detach()
        return rollout

    def sample(self, prompts: Sequence[Prompt], n: int = 1, temperature: float = 1.0) -> Rollout:
        """``n`` samples per prompt, prompt-major rows (``generate`` with KV cache)."""
        prompts = list(prompts)
        prompt_ids, prompt_mask = self.encode_prompts(prompts)
        response = self._generate(prompt_ids, prompt_mask, n, temperature,
                                  self.config.max_new_tokens)
        rows = torch.arange(len(prompts), device=self.device).repeat_interleave(n)
        return self._rollout(
            [prompts[i] for i in rows.tolist()], prompt_ids[rows], prompt_mask[rows],
            response, rows,
        )

    def complete(self, rollout: Rollout, rows: Tensor, prefix_lengths: Tensor) -> Rollout:
        """Keep ``prefix_lengths[m]`` tokens of row ``rows[m]`` and sample the rest (batched)."""
        rows_l, lens_l = rows.tolist(), prefix_lengths.tolist()
        contexts, prefixes = [], []
        for r, k in zip(rows_l, lens_l, strict=True):
            prompt = rollout.prompt_ids[r][rollout.prompt_mask[r].bool()].tolist()
            prefix = rollout.response_ids[r, :k].tolist()
            contexts.append(prompt + prefix)
            prefixes.append(prefix)
        input_ids, attention = left_pad(contexts, self.pad_id)
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        budget = self.config.max_new_tokens - min(lens_l) if lens_l else 0
        tails = self._generate(input_ids, attention, 1, 1.0, max(budget, 1)).tolist()
        responses = []
        for prefix, tail in zip(prefixes, tails, strict=True):
            finished = self.eos_id in prefix
            responses.append(prefix if finished else (prefix + tail)[: self.config.max_new_tokens])
        response_ids, _ = right_pad(responses, self.pad_id)
        picked = rollout.select(rows)
        return self._rollout(
            picked.prompts, picked.prompt_ids, picked.prompt_mask,
            response_ids.to(self.device), picked.group_ids,
        )

    def beam_search(self, prompts: Sequence[Prompt], k: int,
                    allowed: Sequence[str] | None = None) -> list[list[tuple[str, float]]]:
        """Top-``k`` responses per prompt by beam search: ``[(text, sequence log-prob), ...]``.

        An optional generator method (not in the core Protocol) used by recommendation tasks
        for HR@k / NDCG@k; ``transformers`` beam search with ``num_return_sequences=k``.
        ``allowed``: only these response texts may be produced (a prefix trie over their
        token ids, applied as a logits processor, :class:`advx_hf.constrained.TrieConstraint`).
        """
        prompts = list(prompts)
        prompt_ids, prompt_mask = self.encode_prompts(prompts)
        processors = LogitsProcessorList()
        if allowed is not None:
            trie = self._trie.get(allowed, self._target_tokens, len(self.tokenizer), self.device)
            processors.append(TrieConstraint(trie, prompt_ids.shape[1], self.eos_id))
        with torch.no_grad():
            out = self.model.generate(
                **self._shared_prompt_cache(prompt_ids, prompt_mask, k),
                input_ids=prompt_ids, attention_mask=prompt_mask, do_sample=False,
                num_beams=k, num_return_sequences=k, max_new_tokens=self.config.max_new_tokens,
                pad_token_id=self.pad_id, eos_token_id=self.eos_id, early_stopping=True,
                length_penalty=0.0, output_scores=True, return_dict_in_generate=True,
                logits_processor=processors,
            )
        response = out.sequences[:, prompt_ids.shape[1]:]
        mask = mask_through_eos(response, self.eos_id)
        texts = self.decode(response.masked_fill(mask == 0, self.pad_id), mask)
        return beam_rows(texts, out.sequences_scores.tolist(), k)

    # ---------------------------------------------------------------- state (ModelState) and saving
    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def export(self, path: Path) -> None:
        """``advx export``: a Hugging Face directory that ``AutoModelForCausalLM`` and
        ``AutoTokenizer`` load with ``from_pretrained(path)`` (safetensors), and
        ``advx.json`` (how prompts were rendered). A LoRA generator (``lora:``) is written
        merged (a copy; the policy keeps its adapter), its adapter in peft's format under
        ``adapter/`` (and the random base of a ``tiny`` model under ``base/``)."""
        from advx_hf import export_lora, export_pretrained, has_adapters, without_adapters

        keys = ("prompt_template", "max_prompt_tokens", "max_new_tokens", "top_k", "top_p")
        lora = has_adapters(self.model)
        entries = export_lora(self.model, self.tokenizer, path, self.config.model) if lora else {}
        export_pretrained(without_adapters(self.model, merge=True) if lora else self.model,
                          self.tokenizer, path, {
            "kind": "generator", "architecture": "causal",
            **{k: getattr(self.config, k) for k in keys if hasattr(self.config, k)}, **entries,
        })

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def build_causal(config: CausalConfig, ctx: BuildContext) -> CausalGenerator:
    """Factory: a tiny model trained-tokenizer pair from the task's texts, or a pretrained one."""
    check_minimums("generator", config, {
        "batch_size": 1, "max_new_tokens": 1, "max_prompt_tokens": 1, "epochs": 0,
        "lr": 0.0, "max_grad_norm": 0, "vocab_size": 8, "d_model": 1, "num_layers": 1,
        "num_heads": 1,
    })
    if config.tokenizer not in ("bpe", "word"):
        raise ConfigError(f"generator.tokenizer must be 'bpe' or 'word', got {config.tokenizer!r}")
    torch.manual_seed(ctx.seed)
    if config.model == "tiny":
        if ctx.task is None:
            raise ConfigError("generator.model: tiny needs a task (its texts train the tokenizer)")
        from advx_hf import train_tokenizer

        tokenizer = train_tokenizer(
            ctx.task.texts(), vocab_size=config.vocab_size, kind=config.tokenizer, add_eos=False
        )
        model = _tiny_model(config, tokenizer)
    else:
        from advx_hf import loading

        try:
            with loading(ctx.quiet):
                tokenizer = AutoTokenizer.from_pretrained(config.model)
                model = AutoModelForCausalLM.from_pretrained(config.model)
        except OSError as exc:
            raise ConfigError(
                f"generator.model: cannot load {config.model!r} (a hub id or local directory "
                f"with config.json and tokenizer files); use 'tiny' offline. ({exc})"
            ) from exc
    model = apply_lora(model, config.lora, "CAUSAL_LM", "generator")
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model, "generator")
    return CausalGenerator(config, model, tokenizer, ctx.device)
