"""advx built-in plugin: the ``seq2seq`` generator (FLAN-T5 or any HF encoder-decoder policy)."""

from __future__ import annotations

import advx
from advx.hookspecs import Register

from advx_seq2seq.generator import Seq2SeqConfig, Seq2SeqGenerator, build_seq2seq

__all__ = ["Seq2SeqConfig", "Seq2SeqGenerator", "advx_register_generators", "build_seq2seq"]


@advx.hookimpl
def advx_register_generators(register: Register) -> None:
    register("seq2seq", build_seq2seq, Seq2SeqConfig)
