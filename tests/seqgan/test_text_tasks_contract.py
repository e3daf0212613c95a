"""Text tasks: NLL-test per generator token (SequenceNLL), bad corpus files, late keys."""

from __future__ import annotations

import pytest
import torch
from advx.components import BuildContext
from advx.errors import ConfigError, DataError
from advx.rollout import Sample, SequenceNLL
from advx_text_tasks.tasks import TextCorpusConfig, build_text_corpus, nll_per_token


class CountingGenerator:
    """Scores every text 6.0 nats over 3 tokens (a sub-word tokenizer's count, not the
    5 words of the text), recording the temperature it was asked for."""

    def __init__(self) -> None:
        self.temperatures: list[float] = []

    def nll(self, samples, temperature: float = 1.0) -> SequenceNLL:
        self.temperatures.append(temperature)
        n = len(samples)
        return SequenceNLL(total=torch.full((n,), 6.0), tokens=torch.full((n,), 3))


def test_nll_per_token_counts_generator_tokens_and_passes_the_temperature():
    gen = CountingGenerator()
    samples = [Sample("one two three four five")] * 5
    assert nll_per_token(gen, samples, temperature=0.8, batch=2) == pytest.approx(2.0)
    assert gen.temperatures == [0.8, 0.8, 0.8]  # three batches, every one tempered


def ctx(tmp_path):
    return BuildContext(run_dir=tmp_path, seed=0, device="cpu")


def corpus(tmp_path, train: bytes, **keys):
    (tmp_path / "train.txt").write_bytes(train)
    (tmp_path / "test.txt").write_bytes(b"a b c\n")
    config = TextCorpusConfig(train_path=str(tmp_path / "train.txt"),
                              test_path=str(tmp_path / "test.txt"), **keys)
    return build_text_corpus(config, ctx(tmp_path))


def test_binary_corpus_file_is_one_data_error(tmp_path):
    with pytest.raises(DataError, match=r"train\.txt is a binary file"):
        corpus(tmp_path, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")


def test_non_utf8_corpus_names_file_line_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"train\.txt line 2: not valid UTF-8 .*iconv"):
        corpus(tmp_path, "a b\ncaf\u00e9 au lait\n".encode("latin-1"))
    assert len(corpus(tmp_path, "a b\ncaf\u00e9 au lait\n".encode()).train) == 2


@pytest.mark.parametrize("keys, message", [
    ({"temperatures": [0.8, 0.0]}, r"task\.temperatures\[1\] must be > 0"),
    ({"eval_batch": 0}, r"task\.eval_batch must be ≥ 1, got 0"),
    ({"tokenize": "words"}, r"task\.tokenize must be 'whitespace' or 'char'"),
])
def test_late_validated_keys_fail_at_build(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        corpus(tmp_path, b"a b\n", **keys)


def test_corrupt_oracle_pickle_is_one_data_error(tmp_path):
    from advx_text_tasks.tasks import OracleLMConfig, build_oracle_lm

    bad = tmp_path / "oracle.pkl"
    bad.write_bytes(b"\x80\x04truncated")
    with pytest.raises(DataError, match=r"oracle\.pkl: not the SeqGAN oracle pickle"):
        build_oracle_lm(OracleLMConfig(oracle_path=str(bad)), ctx(tmp_path))
