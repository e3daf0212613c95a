"""``reward: cls_loss`` forms of the log P_gen term (gen_term, gen_term_per_token,
gen_term_cap), checked against hand-computed values, and validated in the config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advx.components import StepContext
from advx.errors import ConfigError
from advx.plugins import get_registry
from advx.recipe import load_recipe, validate_recipe
from advx.rollout import Prompt, Rollout
from advx_cls_loss import ClsLossConfig, ClsLossReward, GenTerm


class WordCountLoss:
    """L_cls = number of words of the query (3 and 2 below)."""

    def loss(self, samples):
        return torch.tensor([float(len(s.text.split())) for s in samples])


def rollout() -> Rollout:
    # log P_gen: row 0 = -1 - 2 - 0.5 = -3.5 over 3 tokens, row 1 = -0.2 - 0.3 = -0.5 over 2
    return Rollout(
        prompts=[Prompt("p", {"label": 1}), Prompt("q", {"label": 0})],
        prompt_ids=torch.zeros(2, 1, dtype=torch.long),
        prompt_mask=torch.ones(2, 1, dtype=torch.long),
        response_ids=torch.ones(2, 4, dtype=torch.long),
        response_mask=torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]),
        logprobs=torch.tensor([[-1.0, -2.0, -0.5, 0.0], [-0.2, -0.3, 0.0, 0.0]]),
        texts=["a b c", "d e"],
        group_ids=torch.arange(2),
        ref_logprobs=None,
    )


def reward(**keys):
    ctx = StepContext(task=None, generator=None, classifier=WordCountLoss(), reference=None,
                      round=1, step=0, rng=np.random.default_rng(0))
    return ClsLossReward(ClsLossConfig(**{"alpha": 0.5, "beta": 0.0, **keys}))(rollout(), ctx)


def close(value, expected):
    torch.testing.assert_close(value, torch.tensor(expected))


def test_novelty_is_the_papers_literal_form_and_the_default():
    assert ClsLossConfig().gen_term is GenTerm.novelty
    r = reward()  # α·L_cls − (1 − α)·log P_gen = 0.5·3 + 0.5·3.5, 0.5·2 + 0.5·0.5
    close(r.terms["cls_term"], [1.5, 1.0])
    close(r.terms["gen_term"], [1.75, 0.25])
    close(r.total, [3.25, 1.25])
    close(r.per_token[0], [0.0, 0.0, 3.25, 0.0])  # paid at the last generated token only


def test_fluency_flips_the_sign():
    r = reward(gen_term="fluency")
    close(r.terms["gen_term"], [-1.75, -0.25])
    close(r.total, [1.5 - 1.75, 1.0 - 0.25])


def test_none_keeps_only_the_classifier_term():
    r = reward(gen_term="none")
    close(r.terms["gen_term"], [0.0, 0.0])
    close(r.total, [1.5, 1.0])
    close(r.terms["log_p_gen"], [-3.5, -0.5])  # still logged


def test_per_token_uses_the_mean_token_log_prob():
    r = reward(gen_term_per_token=True)  # −0.5·(−3.5/3), −0.5·(−0.5/2)
    close(r.terms["log_p_gen"], [-3.5 / 3, -0.25])
    close(r.terms["gen_term"], [3.5 / 6, 0.125])


def test_cap_clamps_the_term_and_logs_where_it_bit():
    r = reward(gen_term_cap=1.0)
    close(r.terms["gen_term"], [1.0, 0.25])
    close(r.terms["gen_term_capped"], [1.0, 0.0])
    close(r.total, [2.5, 1.25])
    fluent = reward(gen_term="fluency", gen_term_cap=1.0, gen_term_per_token=True)
    close(fluent.terms["gen_term"], [-3.5 / 6, -0.125])  # under the cap: unchanged
    close(fluent.terms["gen_term_capped"], [0.0, 0.0])


def test_length_normalize_is_the_old_name_of_per_token():
    assert ClsLossConfig(length_normalize=True).gen_term_per_token


@pytest.mark.parametrize("keys, match", [
    ({"gen_term": "novel"}, "reward.gen_term"),
    ({"gen_term_cap": -1.0}, "gen_term_cap"),
    ({"gen_term_cap": float("nan")}, "gen_term_cap"),
    ({"alpha": 1.2}, "alpha"),
    ({"beta": -0.1}, "beta"),
])
def test_bad_values_fail_in_the_config(keys, match):
    with pytest.raises(ConfigError, match=match):
        ClsLossConfig(**keys)


def test_the_recipe_validator_names_the_choices(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ntask: {name: product_relevance}\n"
                      "reward: {name: cls_loss, gen_term: novel}\n")
    with pytest.raises(ConfigError, match=r"reward\.gen_term.*novelty"):
        validate_recipe(load_recipe(recipe), get_registry())


class TwoLabelTask:
    """Prompts ask for label 0 or 1; relabelling keeps the prompt's text apart from the label."""

    label_names = ("irrelevant", "relevant")

    def requested_label(self, prompt):
        return prompt.meta["label"]

    def relabel(self, prompt, label):
        return Prompt(prompt.text, {**prompt.meta, "label": label})


class Reference:
    """log p(text | label): "a b c" reads as label 0 (−1 vs −3), "d e" as neither (−2, −2)."""

    def nll(self, samples, temperature=1.0):
        from advx.rollout import SequenceNLL
        table = {("a b c", 0): -1.0, ("a b c", 1): -3.0, ("d e", 0): -2.0, ("d e", 1): -2.0}
        total = torch.tensor([-table[(s.text, s.label)] for s in samples])
        return SequenceNLL(total=total, tokens=torch.ones(len(samples)))


def test_label_consistency_pays_the_reference_posterior_of_the_requested_label():
    ctx = StepContext(task=TwoLabelTask(), generator=None, classifier=WordCountLoss(),
                      reference=Reference(), round=1, step=0, rng=np.random.default_rng(0))
    r = ClsLossReward(ClsLossConfig(alpha=0.5, beta=0.0, gen_term="none",
                                    label_consistency=2.0))(rollout(), ctx)
    # row 0 asks for label 1: log p(1 | q) = −3 − log(e^−1 + e^−3); row 1: log 0.5
    posterior = [-3.0 - float(np.log(np.exp(-1.0) + np.exp(-3.0))), float(np.log(0.5))]
    close(r.terms["label_log_posterior"], posterior)
    close(r.terms["consistency_term"], [2.0 * p for p in posterior])
    close(r.total, [1.5 + 2.0 * posterior[0], 1.0 + 2.0 * posterior[1]])
    assert "consistency_term" not in reward().terms  # off by default: the paper's reward


def test_label_consistency_needs_the_reference_and_a_labelled_task():
    from advx.errors import PluginError

    with pytest.raises(ConfigError, match="label_consistency must be >= 0"):
        ClsLossConfig(label_consistency=-1.0)
    ctx = StepContext(task=TwoLabelTask(), generator=None, classifier=WordCountLoss(),
                      reference=None, round=1, step=0, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"loop\.use_reference: true"):
        ClsLossReward(ClsLossConfig(label_consistency=1.0, beta=0.0))(rollout(), ctx)
    ctx.reference, ctx.task = Reference(), object()
    with pytest.raises(PluginError, match="label_consistency > 0"):
        ClsLossReward(ClsLossConfig(label_consistency=1.0, beta=0.0))(rollout(), ctx)
