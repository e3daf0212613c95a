"""The experiment loop, generic over the three lines of work.

    pretrain:  generator.sft(task.generator_train()); classifier.fit(task.classifier_train())
    for round in 1..R:
        repeat d_steps:
            augment:   synthetic = task.synthetic_samples(generator.sample(task.augment_prompts))
            classify:  classifier.fit(real ∪ synthetic)
        improve:   repeat S: rollout → reward → optimizer.update
        evaluate, log, checkpoint

Every phase can be switched off in the recipe's ``loop:`` block.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoopConfig"]


@dataclass
class LoopConfig:
    """The ``loop:`` block of a recipe.

    Attributes:
        rounds: number of rounds R after pre-training.
        pretrain_generator: run ``generator.sft`` on the task's generator data first.
        pretrain_classifier: fit the classifier on the task's real data first.
        augment: generate synthetic classifier data each round.
        augment_samples: samples per augment prompt.
        augment_mode: ``accumulate`` (D_N = D_{N-1} ∪ D_syn, the cold-start paper) or
            ``replace`` (fresh fakes every time, SeqGAN's discriminator).
        classify: refit the classifier each round.
        d_steps: repetitions of (augment, classify) per round (SeqGAN's d-steps).
        rl_steps: improvement steps S per round (g-steps × batches).
        batch_size: prompts per improvement step.
        samples_per_prompt: samples per RL prompt (GRPO's group size G).
        temperature: sampling temperature for augment and RL rollouts.
        use_reference: freeze the post-pretraining generator as π_ref and fill
            ``rollout.ref_logprobs`` (needed for KL penalties).
        pretrain_d_steps: (augment, classify) repetitions after the generator's SFT and before
            round 1: SeqGAN's discriminator pre-training on real vs generated sequences.
        improve_first: run the improvement steps before augment/classify within a round
            (SeqGAN: g-step, then d-steps); default is the cold-start order.
        eval_every: evaluate every this many rounds (the last round is always evaluated).
        checkpoint: write ``checkpoints/round-<n>/`` after every evaluated round (``--resume``).
        monitor: metric name whose best round is reported in ``summary.json`` as ``best``
            (e.g. ``valid/hr@10``); empty means the final round only.
        monitor_mode: ``max`` or ``min`` for ``monitor``.
    """

    rounds: int = 4
    pretrain_generator: bool = True
    pretrain_classifier: bool = True
    augment: bool = True
    augment_samples: int = 1
    augment_mode: str = "accumulate"
    classify: bool = True
    d_steps: int = 1
    rl_steps: int = 20
    batch_size: int = 16
    samples_per_prompt: int = 1
    temperature: float = 1.0
    use_reference: bool = True
    pretrain_d_steps: int = 0
    improve_first: bool = False
    eval_every: int = 1
    checkpoint: bool = True
    monitor: str = ""
    monitor_mode: str = "max"
