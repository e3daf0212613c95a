"""Sharded SFT, augmentation / evaluation sampling and the ``cnn_discriminator`` / ``ranker``
fits in a data-parallel run (advx.distributed): two gloo processes through torchrun, each
comparing with the same computation as one plain process; and the one-process paths, which
must be exactly what they were."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from advx.accel import backward
from advx.components import BuildContext
from advx.distributed import gather_rollouts, sample_sharded, sharded_sampling
from advx.numerics import guarded_step
from advx.rollout import Prompt, Rollout
from dp_shard_worker import TEXTS, make_sft, rng_digest, sft_samples
from test_distributed import BIN, _env, _port

WORKER = Path(__file__).with_name("dp_shard_worker.py")
PER_RANK = {"sft_share_accum1", "sft_share_accum2", "sft_rows", "augment_asked", "cnn_rows",
            "ranker_sequence_rows", "ranker_pairs_rows"}


def _max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def _close(one: dict, two: dict, tol: float) -> None:
    assert one.keys() == two.keys()
    assert all(abs(one[k] - two[k]) <= tol for k in one), (one, two)


@pytest.mark.slow
def test_two_processes_shard_sft_sampling_and_fits(tmp_path: Path) -> None:
    cmd = [str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_port()),
           str(WORKER), str(tmp_path)]
    run = subprocess.run(cmd, env=_env(), timeout=300, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    first, second = (json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert first["world_size"] == 2
    # what each rank worked on: its own share (rank 0 the first), together the whole
    shares = {k: (first.pop(k), second.pop(k)) for k in list(first) if k in PER_RANK}
    assert shares["sft_share_accum1"] == shares["sft_share_accum2"] == (TEXTS[:3], TEXTS[3:7])
    assert shares["sft_rows"] == (12, 14)  # 2 epochs of minibatches 4, 4, 4, 1 (13 samples)
    assert shares["augment_asked"] == ([2], [3])  # 5 prompts
    assert shares["cnn_rows"] == (18, 20)  # 2 epochs of minibatches 8, 8, 3 (19 rows)
    assert sum(shares["ranker_sequence_rows"]) == first["ranker_plain_rows"]
    assert 0 < min(shares["ranker_sequence_rows"]) < first["ranker_plain_rows"]
    assert first == second  # every result, gathered or trained, is the same on both ranks

    # SFT: the all-reduced gradient of the two shares (unequal token counts) is the whole
    # minibatch's token-mean gradient, with and without gradient accumulation
    assert first["sft_grad_diff_accum1"] < 1e-5 and first["sft_grad_diff_accum2"] < 1e-5
    # a 2-epoch sharded SFT (last minibatch of one row: one rank's share is empty) ends with
    # the one-process weights, metrics and global RNG state (no dropout in the toy model)
    assert _max_diff(first["sft_params"], first["sft_plain_params"]) < 1e-5
    _close(first["sft_metrics"], first["sft_plain_metrics"], 1e-6)
    assert first["sft_rng"] == first["sft_plain_rng"]

    # augmentation: 5 prompts × 2 samples in uneven shares, gathered whole in prompt order
    assert len(first["augment_texts"]) == 10
    assert first["augment_groups"] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert max(first["augment_lengths"]) <= first["augment_width"]
    # evaluation sampling through the generator (sharded_sampling): one prompt, so one rank
    # sampled nothing; the whole rollout is still on both ranks, and `sample` is restored
    assert len(first["eval_texts"]) == 3 and first["eval_groups"] == [0, 0, 0]
    assert first["restored"]
    # seq2seq with prompts of different lengths: the gathered prompt layout is exactly the
    # one-process one, and re-scoring the gathered rollout gives its sampled log-probs
    assert len(first["t5_texts"]) == 10 and first["t5_groups"] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert first["t5_prompts_equal"] and first["t5_prompt_texts"]
    assert first["t5_rescore_diff"] < 1e-5

    # cnn_discriminator fit (dropout 0): identical on both ranks (checked above) and equal
    # to one process's
    assert _max_diff(first["cnn_params"], first["cnn_plain_params"]) < 1e-5
    _close(first["cnn_metrics"], first["cnn_plain_metrics"], 1e-6)
    # ranker fit (sequence training, sharded model selection): one process's result; the
    # pairs/bce fit with dropout keeps the ranks identical (checked above)
    assert first["ranker_plain_diff"] < 1e-5
    _close(first["ranker_sequence_metrics"], first["ranker_plain_metrics"], 1e-5)
    assert first["ranker_pairs_params"] == second["ranker_pairs_params"]


def test_one_process_sft_is_unchanged() -> None:
    """A plain run's SFT is bit-identical to the loop before data parallelism (written out
    here): the same weights and the same global RNG state afterwards."""
    samples = sft_samples()
    model, loop = make_sft()
    torch.manual_seed(2)
    loop.run(samples, model.batch_loss)
    got, got_rng = [p.detach().clone() for p in model.parameters()], rng_digest()

    model, loop = make_sft()
    torch.manual_seed(2)
    optimizer, params = loop._ensure_optimizer(), loop._params()
    for _ in range(loop.epochs):
        order = torch.randperm(len(samples)).tolist()
        for start in range(0, len(order), loop.batch_size):
            batch = [samples[i] for i in order[start : start + loop.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            total, count = model.batch_loss(batch)
            loss = total / max(count, 1)
            backward(loss)
            guarded_step(optimizer, params, loss=loss, max_norm=loop.max_grad_norm)
    assert all(torch.equal(a, b) for a, b in zip(got, model.parameters(), strict=True))
    assert got_rng == rng_digest()


def test_sampling_helpers_change_nothing_in_a_plain_run(tmp_path: Path) -> None:
    from advx_seqgan.lstm import LSTMConfig, build_lstm
    from dp_shard_worker import WordTask

    ctx = BuildContext(run_dir=tmp_path, seed=0, device="cpu", task=WordTask())
    lstm = build_lstm(LSTMConfig(emb_dim=8, hidden_dim=8, max_len=6, epochs=1), ctx)
    prompts = [Prompt("")] * 4
    torch.manual_seed(7)
    direct = lstm.sample(prompts, n=2)
    torch.manual_seed(7)
    helped = sample_sharded(lstm, prompts, n=2)
    with sharded_sampling(lstm):
        assert "sample" not in vars(lstm)  # nothing shadowed in a plain run
    assert helped.texts == direct.texts
    assert torch.equal(helped.response_ids, direct.response_ids)


def _part(prompt_rows: list[list[int]], response_rows: list[list[int]], left: bool,
          groups: list[int]) -> Rollout:
    def pad(rows: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), 9)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span], mask[i, span] = torch.tensor(row), 1
        return ids, mask

    prompt_ids, prompt_mask = pad(prompt_rows, left)
    response_ids, response_mask = pad(response_rows, False)
    return Rollout(prompts=[Prompt(str(r)) for r in prompt_rows], prompt_ids=prompt_ids,
                   prompt_mask=prompt_mask, response_ids=response_ids,
                   response_mask=response_mask, logprobs=-response_mask.float(),
                   texts=[str(r) for r in response_rows], group_ids=torch.tensor(groups))


@pytest.mark.parametrize("left", [False, True])
def test_gather_rollouts_pads_to_the_widest_share_and_numbers_the_prompts(left: bool) -> None:
    first = _part([[1, 2, 3], [4]], [[5, 6, 7, 8], [5]], left, [0, 1])
    second = _part([[1, 2]], [[6, 7]], left, [0])
    whole = gather_rollouts([first, None, second], [0, 2, 2], pad_id=9)
    assert whole.texts == first.texts + second.texts
    assert whole.group_ids.tolist() == [0, 1, 2]
    assert whole.response_ids.tolist()[2] == [6, 7, 9, 9]  # responses: right-padded
    assert whole.response_mask.tolist()[2] == [1, 1, 0, 0]
    assert whole.logprobs.tolist()[2] == [-1.0, -1.0, 0.0, 0.0]
    # prompts on the side the shares are padded on (the causal generator pads on the left)
    assert whole.prompt_ids.tolist()[2] == ([9, 1, 2] if left else [1, 2, 9])
    assert whole.prompt_mask.tolist()[2] == ([0, 1, 1] if left else [1, 1, 0])
    assert whole.values is None and whole.ref_logprobs is None


def test_gathered_prompts_keep_the_generator_s_padding_side_when_no_share_is_padded() -> None:
    """Each share's prompts of one length, the shares' lengths different: the data cannot
    tell the side, the causal generator declares it (left), as one sample call pads."""
    from advx.distributed import _prompts_left_padded
    from advx_causal.generator import CausalGenerator

    first = _part([[1, 2, 3]], [[5]], True, [0])
    second = _part([[4]], [[6]], True, [0])
    assert not _prompts_left_padded([first, second])  # the data says nothing
    assert _prompts_left_padded([first, second], CausalGenerator)
    whole = gather_rollouts([first, second], [0, 1], pad_id=9,
                            left=_prompts_left_padded([first, second], CausalGenerator))
    assert whole.prompt_ids.tolist()[1] == [9, 9, 4]
    assert whole.prompt_mask.tolist()[1] == [0, 0, 1]
