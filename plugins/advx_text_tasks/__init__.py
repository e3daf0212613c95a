"""advx built-in plugin: unconditional text-generation tasks.

* ``oracle_lm``: SeqGAN's synthetic benchmark (a fixed oracle LSTM's samples are the real
  data; metrics NLL-oracle and NLL-test, per token).
* ``text_corpus``: one whitespace-tokenised sentence a line (Texygen COCO, or any corpus;
  ``tokenize: char`` for Chinese); metrics BLEU-n, self-BLEU-n and NLL-test.
"""

from __future__ import annotations

import advx

from advx_text_tasks.tasks import (
    OracleLMConfig,
    TextCorpusConfig,
    build_oracle_lm,
    build_text_corpus,
)


@advx.hookimpl
def advx_register_tasks(register: advx.hookspecs.Register) -> None:
    register("oracle_lm", build_oracle_lm, OracleLMConfig)
    register("text_corpus", build_text_corpus, TextCorpusConfig)
