"""Token vocabularies shared by the LSTM generator and the CNN discriminator.

Two kinds, chosen by the ``vocab`` key of both components:

* ``ids``: texts are space-separated integer token ids ``0 .. vocab_size-1`` (the synthetic
  oracle's sequences). No special tokens: id 0 doubles as the start input, as in the SeqGAN
  reference code, and sequences have a fixed length (no EOS).
* ``word``: one id per whitespace token, trained on the task's texts with
  ``advx_hf.train_tokenizer(kind="word")`` (ids 0-3 are ``<pad> </s> <unk> <s>``).
  Sequences end with ``</s>``; ``<s>`` is the start input. Character-level corpora are
  handled by the task, which writes one character per space-separated token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from advx.choices import Choice
from advx.errors import DataError


class IdVocab:
    """Integer ids written as text (``"12 4071 9"``); the oracle's vocabulary."""

    kind = "ids"
    pad_id = 0
    eos_id: int | None = None
    start_id = 0
    banned_ids: tuple[int, ...] = ()

    def __init__(self, size: int) -> None:
        self.size = size

    def encode(self, text: str) -> list[int]:
        try:
            ids = [int(tok) for tok in text.split()]
        except ValueError as exc:
            raise DataError(
                f"vocab 'ids' expects space-separated integer ids, got {text[:60]!r}; "
                "use vocab: word for natural text"
            ) from exc
        bad = [i for i in ids if not 0 <= i < self.size]
        if bad:
            raise DataError(f"token id {bad[0]} outside vocab_size {self.size} in {text[:60]!r}")
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(map(str, ids))

    def save(self, path: Path) -> None:
        (path / "vocab.txt").write_text(f"ids {self.size}\n")


class WordVocab:
    """Whitespace words, trained with :func:`advx_hf.train_tokenizer` (kind ``word``)."""

    kind = "word"

    def __init__(self, texts: Sequence[str], max_size: int, lowercase: bool = False) -> None:
        from advx_hf import train_tokenizer

        if not texts:
            raise DataError("vocab 'word' needs the task's texts, but task.texts() is empty")
        self.tokenizer = train_tokenizer(
            texts, vocab_size=max_size, kind="word", lowercase=lowercase, add_eos=False
        )
        vocab = self.tokenizer.get_vocab()
        self.size = len(vocab)
        self._itos = [""] * self.size
        for token, index in vocab.items():
            self._itos[index] = token
        self._stoi = vocab
        self.lowercase = lowercase
        self.pad_id = vocab["<pad>"]
        self.eos_id = vocab["</s>"]
        self.unk_id = vocab["<unk>"]
        self.start_id = vocab["<s>"]
        # never sampled: padding and the start symbol are not words
        self.banned_ids = (self.pad_id, self.start_id)
        self._special = {self.pad_id, self.eos_id, self.start_id}

    def encode(self, text: str) -> list[int]:
        """Word ids followed by ``</s>`` (plain dict look-ups: fast for 20k-row MC batches)."""
        words = text.lower().split() if self.lowercase else text.split()
        return [self._stoi.get(w, self.unk_id) for w in words] + [self.eos_id]

    def decode(self, ids: Sequence[int]) -> str:
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in self._special:
                words.append(self._itos[i])
        return " ".join(words)

    def save(self, path: Path) -> None:
        self.tokenizer.save_pretrained(str(path / "tokenizer"))


class VocabKind(Choice):
    """A component's ``vocab`` key: ``ids`` (texts are integer ids) or ``word``."""

    ids = "ids"
    word = "word"


def build_vocab(kind: VocabKind, texts: Sequence[str], size: int, lowercase: bool = False):
    """The vocabulary named by a component's ``vocab`` key."""
    if kind == VocabKind.ids:
        return IdVocab(size)
    return WordVocab(texts, size, lowercase)
