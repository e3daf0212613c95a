"""Cross-check: advx ``grpo`` loss and gradient == TRL 1.16 GRPOTrainer's, same batch.

Both sides get one tiny causal LM (the advx ``causal`` generator's model), the same prompts and
completions, the same advantages, old log-probs and reference log-probs; TRL computes its loss
with ``GRPOTrainer.compute_loss`` (the function its training step differentiates), advx with
``GRPOOptimizer.loss``. Prompts have equal length (no left padding): TRL's forward passes
no position ids, advx derives them from the mask; with no padding the two coincide.
"""

from __future__ import annotations

import pytest
import torch

trl = pytest.importorskip("trl")

from adagrpo_kit import grpo_batch, trl_trainer  # noqa: E402
from advx_grpo.grpo import GRPOConfig, GRPOOptimizer  # noqa: E402


@pytest.mark.parametrize(
    ("loss_type", "bias_correction_kl"),
    [("grpo", False), ("grpo", True), ("bnpo", True), ("dapo", True), ("dr_grpo", False)],
)
def test_grpo_loss_and_gradient_match_trl(tmp_path, loss_type, bias_correction_kl):
    generator, rollout, advantages = grpo_batch(seed=0)
    beta, eps = 0.04, 0.2
    trainer = trl_trainer(generator, tmp_path, beta=beta, epsilon=eps, loss_type=loss_type,
                          num_generations=4, max_completion_length=rollout.response_ids.shape[1],
                          use_bias_correction_kl=bias_correction_kl)
    inputs = {
        "prompt_ids": rollout.prompt_ids,
        "prompt_mask": rollout.prompt_mask,
        "completion_ids": rollout.response_ids,
        "completion_mask": rollout.response_mask,
        "advantages": advantages,
        "old_per_token_logps": rollout.logprobs,
        "ref_per_token_logps": rollout.ref_logprobs,
        "num_items_in_batch": rollout.response_mask.sum(),
    }
    model = generator.model
    model.zero_grad()
    trl_loss = trainer.compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = [p.grad.clone() for p in model.parameters()]

    ours = GRPOOptimizer(
        GRPOConfig(beta=beta, epsilon=eps, loss_type=loss_type,
                   bias_correction_kl=bias_correction_kl,
                   max_new_tokens=rollout.response_ids.shape[1]),
        generator,
    )
    model.zero_grad()
    our_loss, _ = ours.loss(generator, rollout, advantages)
    our_loss.backward()
    our_grads = [p.grad.clone() for p in model.parameters()]

    theirs, mine = float(trl_loss.detach()), float(our_loss.detach())
    assert abs(theirs - mine) < 1e-5, (theirs, mine)
    assert mine != 0.0
    for a, b in zip(trl_grads, our_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert any(float(g.abs().sum()) > 0 for g in our_grads)
