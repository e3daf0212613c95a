"""Reward ``function``: TRL-signature functions by module or file path, weighted mixing with
one term each, clear errors, and use as the sequence reward inside ``mc_rollout``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import advx_pyreward
import numpy as np
import pytest
import torch
import yaml
from advx import Prompt, Rollout
from advx.cli import app
from advx.components import BuildContext, StepContext
from advx.errors import ConfigError, NonFiniteError, PluginError
from advx.plugins import get_registry
from advx.rundir import RunDir
from advx.runner import prepare_recipe, run_recipe
from advx_pyreward import FunctionRewardConfig, FunctionSpec, build_function_reward
from core_toys import TOY_RECIPE, VOCAB, ToyGenerator, ToyGeneratorConfig
from omegaconf import OmegaConf
from typer.testing import CliRunner

FILE = Path(__file__).resolve().parent / "toy_rewards.py"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "rewards.md"


def _rollout(texts: list[str], metas: list[dict]) -> Rollout:
    """Rows of up to 4 tokens; shorter texts are right-padded (mask 0)."""
    width = 4
    ids = torch.zeros(len(texts), width, dtype=torch.long)
    mask = torch.zeros(len(texts), width, dtype=torch.long)
    for row, text in enumerate(texts):
        tokens = [VOCAB.index(t) for t in text.split()]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        mask[row, : len(tokens)] = 1
    return Rollout(
        prompts=[Prompt(f"p{i}", meta) for i, meta in enumerate(metas)],
        prompt_ids=torch.zeros(len(texts), 1, dtype=torch.long),
        prompt_mask=torch.ones(len(texts), 1, dtype=torch.long),
        response_ids=ids, response_mask=mask,
        logprobs=torch.zeros(len(texts), width),
        texts=texts, group_ids=torch.arange(len(texts)),
    )


def _ctx(tmp_path: Path) -> BuildContext:
    return BuildContext(run_dir=tmp_path, seed=0, device="cpu")


# ============================================================================ calling


def test_one_function_by_module_path_gets_trl_arguments(pm, tmp_path):
    import toy_rewards

    reward = build_function_reward(FunctionRewardConfig(path="toy_rewards:frac_a"), _ctx(tmp_path))
    rollout = _rollout(["a a b", "c d", "a a a a"],
                       [{"label": 1, "product_id": "p1"}, {"label": 0}, {"title": "x"}])
    rewards = reward(rollout)
    want = [2 / 3, 0.0, 1.0]
    assert rewards.total.tolist() == pytest.approx(want)
    assert rewards.terms["frac_a"].tolist() == pytest.approx(want)
    # paid on each row's last generated token, nothing elsewhere
    assert rewards.per_token[0, 2] == pytest.approx(2 / 3) and rewards.per_token[0, :2].sum() == 0
    assert rewards.per_token[1, 1] == 0.0 and rewards.per_token[2, 3] == pytest.approx(1.0)
    (seen,) = toy_rewards.SEEN
    assert seen["prompts"] == ["p0", "p1", "p2"]
    assert seen["completions"] == ["a a b", "c d", "a a a a"]
    assert seen["completion_ids"] == [[0, 0, 1], [2, 3], [0, 0, 0, 0]]
    assert seen["label"] == [1, 0, None]
    assert seen["product_id"] == ["p1", None, None] and seen["title"] == [None, None, "x"]


def test_weighted_mix_logs_every_function_as_its_own_term(pm, tmp_path):
    config = FunctionRewardConfig(functions=[
        FunctionSpec(path=f"{FILE}:frac_a", weight=2.0),
        FunctionSpec(path="toy_rewards:n_tokens", weight=-0.5, name="length"),
        FunctionSpec(path="toy_rewards:label_bonus", weight=1.0),
    ])
    reward = build_function_reward(config, _ctx(tmp_path))
    rewards = reward(_rollout(["a b", "a a a"], [{"label": 1}, {"label": 0}]))
    # hand-computed: 2·frac_a − 0.5·tokens + 1·[label == 1]
    assert rewards.total.tolist() == pytest.approx([2 * 0.5 - 0.5 * 2 + 1, 2 * 1.0 - 0.5 * 3])
    assert set(rewards.terms) == {"frac_a", "length", "label_bonus"}
    assert rewards.terms["length"].tolist() == [2.0, 3.0]
    assert rewards.summary()["reward/label_bonus"] == pytest.approx(0.5)


def test_any_term_name_is_a_term(pm, tmp_path):
    # names that are parameters of Rewards.at_end were a TypeError at the first step
    config = FunctionRewardConfig(functions=[
        FunctionSpec(path="toy_rewards:frac_a", name="rollout"),
        FunctionSpec(path="toy_rewards:n_tokens", name="sequence_reward", weight=0.5),
    ])
    rewards = build_function_reward(config, _ctx(tmp_path))(_rollout(["a b"], [{}]))
    assert rewards.terms["rollout"].tolist() == [0.5]
    assert rewards.terms["sequence_reward"].tolist() == [2.0]
    assert rewards.total.tolist() == pytest.approx([0.5 + 0.5 * 2.0])


def test_a_toy_run_logs_each_term_and_the_weighted_total(pm, tmp_path):
    recipe = TOY_RECIPE.replace(
        "reward: {name: toy_disc, beta: 0.05}",
        "reward: {name: function, functions: [{path: 'toy_rewards:frac_a', weight: 2.0}, "
        "{path: 'toy_rewards:n_tokens', weight: -0.25, name: len}]}",
    )
    path = tmp_path / "toy.yaml"
    path.write_text(recipe)
    result = run_recipe(path, run_dir=tmp_path / "run")
    steps = [r for r in RunDir(result.run_dir).read_metrics() if r["kind"] == "step"]
    assert len(steps) == 9
    for record in steps:
        total = 2.0 * record["reward/frac_a"] - 0.25 * record["reward/len"]
        assert record["reward/total"] == pytest.approx(total, rel=1e-5)
        assert record["reward/len"] == 4.0  # the toy's responses have 4 tokens
    rows = [json.loads(line) for line in
            (result.run_dir / "samples" / "round-1.jsonl").read_text().splitlines()]
    improve = [r for r in rows if r["phase"] == "improve"]
    assert improve
    for row in improve:  # every sample's term, computed by hand from its text
        frac = row["text"].split().count("a") / 4
        assert row["reward/frac_a"] == pytest.approx(frac)
        assert row["reward"] == pytest.approx(2 * frac - 1.0)


def test_term_names_a_single_function_in_a_recipe(pm, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE.replace(
        "reward: {name: toy_disc, beta: 0.05}",
        "reward: {name: function, path: 'toy_rewards:frac_a', term: share_a, weight: 2.0}"))
    block = prepare_recipe(path, pm=pm).components["reward"]
    rewards = block.spec.factory(block.config, _ctx(tmp_path))(_rollout(["a b"], [{}]))
    assert list(rewards.terms) == ["share_a"] and rewards.total.tolist() == [1.0]


def test_trl_reward_function_factories_plug_in_as_they_are(pm, tmp_path):
    config = FunctionRewardConfig(functions=[
        FunctionSpec(path="trl.rewards:get_repetition_penalty_reward",
                     args={"ngram_size": 2, "max_penalty": -1.0}),
        FunctionSpec(path="toy_rewards:frac_a", weight=0.5),
    ])
    reward = build_function_reward(config, _ctx(tmp_path))
    # TRL's docstring example: ids [1, 2, 3, 4] → 0.0, [5, 5, 5, 5] → −1 · (1 − 1/3)
    rewards = reward(_rollout(["b c d e", "e e e e"], [{}, {}]))
    assert rewards.terms["repetition_penalty_reward"].tolist() == pytest.approx([0.0, -2 / 3])
    assert rewards.total.tolist() == pytest.approx([0.0, -2 / 3])


def test_the_five_line_example_of_the_docs_works(pm, tmp_path, monkeypatch):
    """docs/rewards.md's first code block, saved as the file its first recipe line names."""
    text = DOCS.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    block = yaml.safe_load(re.search(r"```yaml\n(.*?)```", text, re.S).group(1))["reward"]
    assert len(code.strip().splitlines()) + 1 == 5  # four of Python, one of recipe
    monkeypatch.chdir(tmp_path)
    (tmp_path / code.splitlines()[0].removeprefix("# ").strip()).write_text(code)
    spec = get_registry(pm).get("reward", block.pop("name"))
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(spec.config_class), block))
    rewards = spec.factory(config, _ctx(tmp_path))(_rollout(["a", "a b", "a b c d"], [{}] * 3))
    assert rewards.terms["brevity"].tolist() == pytest.approx([1.0, 0.5, 0.25])


# ============================================================================ errors


@pytest.mark.parametrize(("function", "error", "message"), [
    ("too_few", PluginError, "'too_few' returned 1 values for 2 completions"),
    ("with_none", PluginError, "'with_none' returned None for completion 0.*TRL's None"),
    ("a_string", PluginError, "'a_string' returned a str; it must return a list of 2 floats"),
    ("with_nan", NonFiniteError, "reward function 'with_nan' .*is nan at round 2, step 5"),
])
def test_a_bad_return_is_a_clear_error_naming_the_function(pm, tmp_path, function, error,
                                                           message):
    reward = build_function_reward(FunctionRewardConfig(path=f"toy_rewards:{function}"),
                                   _ctx(tmp_path))
    ctx = StepContext(task=None, generator=None, classifier=None, reference=None,  # type: ignore[arg-type]
                      round=2, step=5, rng=np.random.default_rng(0))
    with pytest.raises(error, match=message):
        reward(_rollout(["a b", "c"], [{}, {}]), ctx)


@pytest.mark.parametrize(("config", "message"), [
    (FunctionRewardConfig(path="no_such_module_xyz:fn"),
     "reward.path: cannot import module 'no_such_module_xyz'.*PYTHONPATH.*no_such_module_xyz.py"),
    (FunctionRewardConfig(path="toy_rewards:nope"),
     "reward.path: 'toy_rewards' has no attribute 'nope'; "
     "callables there: a_string, frac_a, label_bonus,"),
    (FunctionRewardConfig(path="toy_rewards:NOT_CALLABLE"), "is a int, not a function"),
    (FunctionRewardConfig(path="toy_rewards.frac_a"), "is not 'module:function'"),
    (FunctionRewardConfig(path="missing/rewards.py:fn"), "names the file 'missing/rewards.py'"),
    (FunctionRewardConfig(), "needs path: module:function, or functions"),
    (FunctionRewardConfig(path="toy_rewards:frac_a",
                          functions=[FunctionSpec(path="toy_rewards:n_tokens")]), "not both"),
    (FunctionRewardConfig(weight=2.0, functions=[FunctionSpec(path="toy_rewards:frac_a")]),
     "give weight, args and the term's name inside each entry"),
    (FunctionRewardConfig(path="toy_rewards:frac_a", args={"x": 1}),
     r"calling toy_rewards:frac_a with args \{'x': 1\} raised TypeError"),
    (FunctionRewardConfig(path="toy_rewards:n_tokens", args={"prompts": [], "completions": [],
                                                              "completion_ids": []}),
     r"toy_rewards:n_tokens\(\*\*args\) returned a list, not a function"),
    (FunctionRewardConfig(functions=[FunctionSpec(path="toy_rewards:frac_a"),
                                     FunctionSpec(path=f"{FILE}:frac_a")]),
     "reward.functions.1.path: two reward functions are both named 'frac_a'"),
])
def test_a_bad_block_is_a_config_error(pm, tmp_path, config, message):
    with pytest.raises(ConfigError, match=message):
        build_function_reward(config, _ctx(tmp_path))


def test_a_bad_path_exits_2_from_the_cli(pm, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY_RECIPE.replace("reward: {name: toy_disc, beta: 0.05}",
                                       "reward: {name: function, path: 'nomod_abc:fn'}"))
    result = CliRunner().invoke(app, ["run", str(path), "--run-dir", str(tmp_path / "run"), "-q"])
    assert result.exit_code == 2, result.output
    assert "cannot import module 'nomod_abc'" in result.output
    assert "Traceback" not in result.output


def test_registered_as_reward_function(pm):
    spec = get_registry(pm).get("reward", "function")
    assert spec.factory is build_function_reward and spec.config_class is FunctionRewardConfig
    assert spec.plugin == "pyreward" and advx_pyreward.__all__


# ============================================================================ MC rollout


class _CompletingGenerator(ToyGenerator):
    """The toy unigram, with deterministic continuations: every missing token is ``a``."""

    def complete(self, rollout: Rollout, rows: torch.Tensor, prefix_lengths: torch.Tensor):
        ids = rollout.response_ids[rows].clone()
        for m, keep in enumerate(prefix_lengths.tolist()):
            ids[m, keep:] = 0
        picked = rollout.select(rows)
        picked.response_ids, picked.response_mask = ids, torch.ones_like(ids)
        picked.texts = [" ".join(VOCAB[i] for i in row) for row in ids.tolist()]
        return picked


@pytest.mark.parametrize("wrapped", [
    {"name": "function", "path": "toy_rewards:frac_a", "weight": 3.0},
    {"name": "function", "functions": [{"path": "toy_rewards:frac_a", "weight": 2.0},
                                       {"path": f"{FILE}:frac_a", "weight": 1.0, "name": "b"}]},
])
def test_as_the_sequence_reward_wrapped_by_the_mc_rollout(pm, tmp_path, wrapped):
    import toy_rewards

    spec = get_registry(pm).get("reward", "mc_rollout")
    block = {"rollouts": 2, "per_token": "q", "wrapped": wrapped}
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(spec.config_class), block))
    ctx = _ctx(tmp_path)
    mc = spec.factory(config, ctx)
    generator = _CompletingGenerator(ToyGeneratorConfig(), ctx)
    step = StepContext(task=None, generator=generator, classifier=None, reference=None,  # type: ignore[arg-type]
                       round=1, step=1, rng=np.random.default_rng(0))
    rewards = mc(_rollout(["b b c d", "c a"], [{}, {}]), step)
    # Q_t = 3 · frac_a(prefix_t + a…a) for t < T, and 3 · frac_a(full text) at the last token
    want = torch.tensor([[3 * 3 / 4, 3 * 2 / 4, 3 * 1 / 4, 0.0],
                         [3 * 3 / 4, 3 * 1 / 2, 0.0, 0.0]])
    assert torch.allclose(rewards.per_token, want)
    assert rewards.terms["disc_prob"].tolist() == pytest.approx([0.0, 1.5])
    # the function saw the continuations (2 rollouts × 4 prefixes) and the full rows
    # (toy_rewards.SEEN holds the calls of the module-path function; the file is another module)
    assert sum(len(call["completions"]) for call in toy_rewards.SEEN) == 2 * (3 + 1) + 2
