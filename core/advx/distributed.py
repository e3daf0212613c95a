"""Data-parallel runs: ``accelerate launch --multi_gpu --num_processes N -m advx run RECIPE``
or ``torchrun --nproc_per_node N -m advx run RECIPE`` (see docs/scaling.md).

A launcher starts N copies of ``advx run``; each reads ``RANK``/``WORLD_SIZE`` from the
environment and joins one process group through ``accelerate.PartialState`` (gloo on CPU,
NCCL on GPUs). A plain ``advx run`` has no ``WORLD_SIZE`` and none of this does anything.

What is sharded and what is replicated (the subset implemented; docs/scaling.md):

* **Improvement steps are data-parallel.** Every process draws the same global batch of
  ``loop.batch_size`` prompts (the loop's RNG is identical on every rank) and keeps its
  contiguous shard (:func:`shard`), so the recipe's batch size stays the global one and must
  be divisible by N. Each process samples its shard under its own torch seed, scores π_ref and
  the reward on it locally, and runs the optimizer's update on it; every optimizer step
  averages the gradients over the processes first (:func:`all_reduce_gradients`, called by
  :func:`advx.numerics.guarded_step`), so the weights stay identical on every rank. PPO/GRPO
  minibatch sizes, reward normalisation and advantage whitening are per process (on the
  shard).
* The step's metrics are averaged over the ranks (:func:`mean_metrics`); the samples kept
  in ``samples/round-<n>.jsonl`` are the main process's shard.
* **Evaluation scoring is sharded and gathered** where a task asks for it
  (:func:`shard_map`, accelerate's ``gather_for_metrics`` for a list of items): each rank
  scores its contiguous share of the split, every rank gets the whole result, and the metrics
  are computed on the whole split once, equal to one process's (the ``product_relevance``
  task's classifier probabilities and losses).
* **Classifier fits are sharded** where the classifier does it (the ``encoder`` classifier):
  every rank holds the same training set (checked, :func:`same_on_every_rank`), takes its
  share of each minibatch (:func:`shard_bounds`), and the all-reduce inside ``guarded_step``
  averages the gradients, weighted so the update is the whole minibatch's.
* **SFT and the other classifiers' fits are sharded the same way**
  (:class:`advx.generator_kit.SFTLoop`, the ``cnn_discriminator`` and ``ranker`` fits): one
  global minibatch per optimizer step, each rank differentiates its share's *summed* loss
  scaled by :func:`share_scale` (N / the whole minibatch's count, from :func:`sum_across`), so
  the average ``guarded_step`` takes is the whole minibatch's mean loss and gradient.
* **Generator sampling outside the improvement step is sharded and gathered**
  (:func:`sample_sharded` for augmentation, :func:`sharded_sampling` around evaluation): each
  rank samples its contiguous share of the prompts under its own seed, and every rank gets the
  whole rollout in prompt order (:func:`gather_rollouts`). The samples are equal in
  distribution to a one-process run's, not bit-identical (a different random stream per share).
* **Everything else is replicated**: the rest of evaluation, and the fits of classifiers that
  do not shard themselves, run whole on every process with the same RNG state, so they compute
  the same numbers (their optimizer steps are all-reduced too).
* **Only the main process writes**: it creates the run folder and shares its path; the other
  ranks get a read-only view of it (:meth:`advx.rundir.RunDir` with ``read_only``) and build
  their components after the main process, from a private temporary copy of what it wrote
  (tiny models, tokenizers; :func:`advx.build.build_components`); loggers and progress live
  on the main process only. The global RNG states are the same on every rank between
  improvement steps, so the main process's checkpoint holds every rank's RNG state;
  ``--resume`` under the same launch reloads it on every rank.

Why not ``DistributedDataParallel``: DDP synchronises gradients inside *its own* ``forward``,
but generators score through ``generate`` and their models' forwards directly (and a value
head beside the model), so the averaging is done once per optimizer step instead: one in-place
``torch.distributed.all_reduce`` per gradient (:func:`all_reduce_gradients`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from advx.errors import ConfigError
from advx.rollout import Rollout

__all__ = [
    "all_reduce_gradients",
    "any_rank",
    "broadcast_object",
    "gather_rollouts",
    "is_distributed",
    "is_main_process",
    "mean_across",
    "mean_metrics",
    "private_dir",
    "rank",
    "rank_seed",
    "same_on_every_rank",
    "sample_sharded",
    "shard",
    "shard_bounds",
    "shard_map",
    "sharded_sampling",
    "share_scale",
    "shared_run_dir",
    "sum_across",
    "world_size",
]

T = TypeVar("T")
R = TypeVar("R")


def world_size() -> int:
    """Processes in this run (``WORLD_SIZE`` set by the launcher; 1 for a plain run)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global rank (``RANK``; 0 for a plain run)."""
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return rank() == 0


def _state() -> Any:
    """accelerate's process state: initialises the process group once (gloo on CPU)."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


_SHUTDOWN_REGISTERED = False


def init() -> None:
    """Join the process group now (a no-op for a plain run), and leave it cleanly at exit."""
    global _SHUTDOWN_REGISTERED
    if is_distributed():
        _state()
        if not _SHUTDOWN_REGISTERED:
            atexit.register(_leave_process_group)
            _SHUTDOWN_REGISTERED = True


def _leave_process_group(timeout_s: float = 60.0) -> None:
    """At exit: wait for every rank, then destroy the process group. Without it, gloo's
    background threads are still alive when the interpreter tears down and a rank can abort
    at exit ("terminate called without an active exception", exit -6; seen in CI right after
    a collective). The barrier has a timeout so that a rank whose peer died does not hang
    (gloo's ``monitored_barrier``; on NCCL an asynchronous barrier waited on with the timeout,
    rather than the process group's own, 10 minutes by default); failures here are ignored,
    the process is leaving."""
    import datetime

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    timeout = datetime.timedelta(seconds=timeout_s)
    with contextlib.suppress(Exception):  # a dead peer: leave anyway
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=timeout)
        else:
            work = dist.barrier(async_op=True)
            if work is not None:
                work.wait(timeout=timeout)
    with contextlib.suppress(Exception):
        dist.destroy_process_group()


def broadcast_object(value: T) -> T:
    """The main process's ``value`` on every rank (picklable objects)."""
    if not is_distributed():
        return value
    from accelerate.utils import broadcast_object_list

    _state()
    box = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def mean_across(value: float) -> float:
    """The mean of a float over the ranks (a decision every rank must take alike, e.g.
    PPO's early stop on approx-KL)."""
    if not is_distributed():
        return value
    from accelerate.utils import reduce

    return float(reduce(_numbers([value]), reduction="mean"))


def sum_across(values: Sequence[float]) -> list[float]:
    """Each value summed over the ranks, in one collective (the whole minibatch's counts in
    a sharded fit: tokens, rows, negatives). A plain run returns the values as they are."""
    if not is_distributed():
        return [float(v) for v in values]
    from accelerate.utils import reduce

    summed = reduce(_numbers(values), reduction="sum")
    return [float(v) for v in summed.tolist()]


def _numbers(values: Sequence[float]) -> torch.Tensor:
    """Floats as a float64 tensor on this process's device: NCCL reduces CUDA tensors only
    (gloo takes CPU ones, where the device is the CPU anyway)."""
    return torch.tensor([float(v) for v in values], dtype=torch.float64, device=_state().device)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (a failure every rank must act on,
    e.g. a non-finite reward on one shard: all skip the step, none waits in an all-reduce)."""
    if not is_distributed():
        return flag
    return mean_across(1.0 if flag else 0.0) > 0.0


def mean_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """Each metric averaged over the ranks that report it (an improvement step's metrics are
    means over the rank's shard; shards are equal, so this is the global batch's mean)."""
    if not is_distributed():
        return metrics
    everyone = _gather(metrics)
    keys = dict.fromkeys(k for m in everyone for k in m)
    out = {}
    for key in keys:
        values = [m[key] for m in everyone if key in m]
        numeric = [float(v) for v in values if isinstance(v, (int, float))]
        out[key] = sum(numeric) / len(numeric) if len(numeric) == len(values) else values[0]
    return out


def all_reduce_gradients(parameters: Sequence[torch.Tensor], loss: torch.Tensor | None) -> (
        torch.Tensor | None):
    """Average the gradients of ``parameters`` over the ranks, in place; returns the mean
    loss (None without one). A missing gradient counts as zeros, so every rank reduces the
    same tensors, and stays missing only where no rank has one (an optimizer then skips the
    parameter, as in one process); a NaN on one rank reaches every rank, so all of them
    refuse the step alike.

    One ``torch.distributed.all_reduce`` per gradient, in place, then one division: on CPU
    about 3x less time than flattening the whole gradient into one vector first (with
    accelerate's ``reduce``, which also clones it, and a copy back: 0.5-0.6 s vs 0.15-0.2 s
    CPU per step at the t5-small shape, ``benchmarks/scaling.py --phases``). Not
    ``async_op=True`` with all of them in flight at once: barely faster, and gloo then aborted
    a process at exit in 2 of 8 two-process runs. Non-fp32 gradients are summed in fp32
    copies."""
    if not is_distributed():
        return loss
    import torch.distributed as dist

    _state()
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return loss
    device = params[0].device
    head = [float(p.grad is not None) for p in params]  # which ranks have a gradient
    head.append(float(loss.detach()) if loss is not None else 0.0)
    summed = [torch.tensor(head, dtype=torch.float32, device=device)]
    for p in params:
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        if grad.dtype != torch.float32 or not grad.is_contiguous():
            grad = grad.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
        summed.append(grad)
    for t in summed:
        dist.all_reduce(t)
    n = world_size()
    flags = summed[0][:-1].tolist()
    for p, grad, flag in zip(params, summed[1:], flags, strict=True):
        grad.div_(n)
        if p.grad is not None:
            if grad is not p.grad:
                p.grad.copy_(grad)
        elif flag > 0:
            p.grad = grad.to(p.dtype)
    return summed[0][-1] / n if loss is not None else None


def shard(items: Sequence[T]) -> list[T]:
    """This rank's contiguous share of a global batch (rank 0 the first ``len/N`` items);
    ConfigError unless the batch divides evenly (every rank must take the same number of
    optimizer steps)."""
    n, size = world_size(), len(items)
    if n == 1:
        return list(items)
    if size % n:
        raise ConfigError(
            f"loop.batch_size ({size} prompts) must be divisible by the number of processes "
            f"({n}) in a data-parallel run: the batch size is the global one, split evenly"
        )
    per = size // n
    return list(items[rank() * per : (rank() + 1) * per])


def shard_bounds(size: int, of_rank: int | None = None) -> tuple[int, int]:
    """``[lo, hi)`` of this rank's (or rank ``of_rank``'s) contiguous share of ``size`` items
    when they need not divide evenly (evaluation splits, a fit's last minibatch): shares
    differ by at most one item, rank order is item order, and a rank may get none when
    ``size < N``."""
    n, r = world_size(), rank() if of_rank is None else of_rank
    return size * r // n, size * (r + 1) // n


def share_scale(count: float) -> float:
    """What a rank multiplies its share's *summed* loss by in a sharded fit: N / ``count``,
    with ``count`` the whole minibatch's (rows, or tokens for a token mean; 0 counts as 1).
    The all-reduce in :func:`advx.numerics.guarded_step` averages the N ranks' gradients, so
    the average of ``summed_r × N / count`` is ``Σ_r summed_r / count``: the gradient of the
    whole minibatch's mean loss, as one process computes it (up to float rounding). 1 / count
    in a plain run."""
    return world_size() / max(float(count), 1.0)


def _gather(value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank (picklable objects)."""
    _state()
    everyone: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(everyone, value)
    return everyone


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0)
    if isinstance(first, np.ndarray):
        return np.concatenate(parts, axis=0)
    if isinstance(first, list):
        return [x for part in parts for x in part]
    raise TypeError(f"shard_map: fn returned {type(first).__name__}; expected a tensor, a "
                    "numpy array or a list (rows along the first axis)")


def shard_map(fn: Callable[[Sequence[T]], R], items: Sequence[T]) -> R:
    """``fn(items)``, computed as ``fn`` on this rank's contiguous share of ``items``
    (:func:`shard_bounds`) and the shares gathered in order on every rank, so every rank holds
    the whole result; the same as ``fn(items)`` for a row-wise ``fn`` (accelerate's
    ``gather_for_metrics`` for a list of items instead of a DataLoader: shares may be uneven,
    and nothing is padded or duplicated, so metrics are computed on the whole split once).

    Use it where every rank holds the *same* ``items`` and would otherwise compute ``fn`` on
    all of them (evaluation: the classifier's probabilities and losses on a split). ``fn``
    must map rows to rows (a tensor, numpy array or list with one row per item), must not
    itself communicate, and must accept an empty share (``size < N``). A plain run calls
    ``fn(items)``: nothing else happens. Tensors travel through the CPU (``all_gather_object``
    pickles them) and come back on the device of this rank's share."""
    if not is_distributed():
        return fn(items)
    lo, hi = shard_bounds(len(items))
    part = fn(list(items[lo:hi]))
    if isinstance(part, torch.Tensor):
        device = part.device
        return _concat([p.to(device) for p in _gather(part.detach().cpu())])
    return _concat(_gather(part))


def same_on_every_rank(key: str) -> bool:
    """True on every rank when every rank passes the same ``key`` (compared by its SHA-256,
    so a long key costs a few bytes); always True in a plain run. A component checks this
    before sharding work over inputs it expects to be replicated (a classifier fit's
    training set), and keeps the replicated path when the ranks disagree."""
    if not is_distributed():
        return True
    digests = _gather(hashlib.sha256(key.encode()).hexdigest())
    return all(d == digests[0] for d in digests)


@contextmanager
def rank_seed(step: int | None = None) -> Iterator[None]:
    """Within the block, torch draws from a seed of its own on each rank (sampling a shard,
    dropout); outside, every rank's global RNG stays the same. One draw from the shared
    stream picks the seed, so runs are reproducible and the ranks' samples independent.

    With ``step`` (a sharded fit's optimizer-step counter) the shared stream is only peeked,
    not advanced, and the seed mixes the peeked value, ``step`` and the rank: a sharded fit
    then leaves the global stream where a one-process fit without dropout leaves it, so its
    later draws (the next epoch's minibatch order) are the ones one process makes.

    The CPU generator, and the current CUDA device's when there is one, are forked: both
    are restored after the block."""
    if not is_distributed():
        yield
        return
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    if step is None:
        seed = int(torch.randint(0, 2**62, ()).item()) + rank()
    else:
        with torch.random.fork_rng(devices=[]):
            peeked = int(torch.randint(0, 2**62, ()).item())
        seed = int(np.random.SeedSequence([peeked, step, rank()]).generate_state(1, np.uint64)[0])
        seed %= 2**62
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _pad_cat(parts: list[torch.Tensor], value: float, left: bool = False) -> torch.Tensor:
    """``[Σ rows, max width]``: 2-D ``parts`` padded on the right (left) with ``value``."""
    width = max(t.shape[1] for t in parts)
    padded = []
    for t in parts:
        pad = (width - t.shape[1], 0) if left else (0, width - t.shape[1])
        padded.append(torch.nn.functional.pad(t, pad, value=value) if any(pad) else t)
    return torch.cat(padded, dim=0)


def _prompts_left_padded(parts: list[Rollout], generator: Any = None) -> bool:
    """Whether the prompts are left-padded (the ``causal`` generator's layout): the
    generator's ``prompt_padding_side`` when it declares one, else a row with padding before
    its last column. The data alone cannot tell when no share has a padded row (each share's
    prompts of one length, the shares' lengths different); the contract's right padding is
    the default then."""
    side = getattr(generator, "prompt_padding_side", None)
    if side in ("left", "right"):
        return side == "left"
    for part in parts:
        mask = part.prompt_mask
        if mask.shape[1] and bool(((mask[:, 0] == 0) & (mask[:, -1] == 1)).any()):
            return True
    return False


def _pad_id(generator: Any, parts: list[Rollout]) -> int:
    """The generator's pad id (``pad_id`` or ``vocab.pad_id``), else the id found at a
    padded response position, else 0; all the built-in generators pad with their pad id."""
    for owner in (generator, getattr(generator, "vocab", None)):
        if isinstance(getattr(owner, "pad_id", None), int):
            return int(owner.pad_id)
    for part in parts:
        padded = part.response_ids[part.response_mask == 0]
        if padded.numel():
            return int(padded[0])
    return 0


def gather_rollouts(parts: Sequence[Rollout | None], group_offsets: Sequence[int],
                    pad_id: int = 0, left: bool | None = None) -> Rollout:
    """One rollout of the ranks' ``parts`` in rank order (None: a rank with no prompts).

    Rows are concatenated; 2-D tensors are padded to the widest share — responses (ids with
    ``pad_id``, masks and log-probs/values with 0) on the right, prompts on the side the
    shares are padded on — so the layout is the one a single ``sample`` call on all the
    prompts gives. ``group_ids`` of part r are shifted by ``group_offsets[r]`` (the index of
    its first prompt), so they number the prompts of the whole batch. ``left``: pad the
    prompts on the left (True) or right (False); None: the side the shares are padded on."""
    present = [(p, off) for p, off in zip(parts, group_offsets, strict=True) if p is not None]
    if not present:
        raise ValueError("gather_rollouts: every part is empty")
    rollouts = [p for p, _ in present]
    if left is None:
        left = _prompts_left_padded(rollouts)

    def optional(name: str) -> torch.Tensor | None:
        tensors = [getattr(p, name) for p in rollouts]
        if any(t is None for t in tensors):
            return None
        return _pad_cat(tensors, 0.0)

    return Rollout(
        prompts=[prompt for p in rollouts for prompt in p.prompts],
        prompt_ids=_pad_cat([p.prompt_ids for p in rollouts], pad_id, left),
        prompt_mask=_pad_cat([p.prompt_mask for p in rollouts], 0, left),
        response_ids=_pad_cat([p.response_ids for p in rollouts], pad_id),
        response_mask=_pad_cat([p.response_mask for p in rollouts], 0),
        logprobs=_pad_cat([p.logprobs for p in rollouts], 0.0),
        texts=[text for p in rollouts for text in p.texts],
        group_ids=torch.cat([p.group_ids + off for p, off in present]),
        ref_logprobs=optional("ref_logprobs"),
        values=optional("values"),
    )


def _to(rollout: Rollout, device: Any) -> Rollout:
    """The rollout with every tensor on ``device`` (to CPU to travel, back afterwards)."""
    moved = {name: (value.to(device) if isinstance(value, torch.Tensor) else value)
             for name, value in vars(rollout).items()}
    return Rollout(**moved)


def _sample_sharded(generator: Any, sample: Callable[..., Rollout], prompts: Sequence[Any],
                    n: int, temperature: float, **kwargs: Any) -> Rollout:
    if not is_distributed() or not prompts:
        return sample(prompts, n=n, temperature=temperature, **kwargs)
    lo, hi = shard_bounds(len(prompts))
    with rank_seed():  # each share its own stream; the global RNG advances alike everywhere
        part = sample(list(prompts[lo:hi]), n=n, temperature=temperature,
                      **kwargs) if hi > lo else None
    if part is not None:
        device = part.response_ids.device
    else:
        device = next(iter(generator.parameters()), torch.empty(0)).device
    parts = _gather(None if part is None else _to(part, "cpu"))
    offsets = [shard_bounds(len(prompts), r)[0] for r in range(world_size())]
    present = [p for p in parts if p is not None]
    return _to(gather_rollouts(parts, offsets, _pad_id(generator, present),
                               _prompts_left_padded(present, generator)), device)


def sample_sharded(generator: Any, prompts: Sequence[Any], n: int = 1,
                   temperature: float = 1.0) -> Rollout:
    """``generator.sample(prompts, n, temperature)`` with the prompts sharded over the ranks.

    Each rank samples its contiguous share of ``prompts`` (:func:`shard_bounds`; uneven or
    empty shares allowed) under a seed of its own (:func:`rank_seed`), and the shares are
    gathered (:func:`gather_rollouts`), so every rank holds the same whole rollout, rows in
    the order one call on all the prompts gives. Every rank must call it at the same point
    with the same prompts (it is a collective). The samples are equal *in distribution* to a
    one-process call, not bit-identical: each share is drawn from its own random stream. A
    plain run is ``generator.sample(...)`` and nothing else."""
    return _sample_sharded(generator, generator.sample, prompts, n, temperature)


@contextmanager
def sharded_sampling(generator: Any) -> Iterator[None]:
    """Within the block, ``generator.sample`` is :func:`sample_sharded` (evaluation: the
    task's ``evaluate`` samples through the generator it is given and cannot shard itself).
    The instance's ``sample`` is shadowed and restored afterwards, so capability checks
    (``isinstance`` against protocols) see the generator itself. Nothing changes in a plain
    run or without a generator."""
    if generator is None or not is_distributed():
        yield
        return
    original = generator.sample
    shadowed = "sample" in vars(generator)

    def sample(prompts: Sequence[Any], n: int = 1, temperature: float = 1.0,
               **kwargs: Any) -> Rollout:
        return _sample_sharded(generator, original, prompts, n, temperature, **kwargs)

    generator.sample = sample
    try:
        yield
    finally:
        if shadowed:
            generator.sample = original
        else:
            del generator.sample


def shared_run_dir(make: Callable[[], Any]) -> Any:
    """The run folder: made by the main process (``make()``), the same path on every rank,
    read-only on the others."""
    if not is_distributed():
        return make()
    from advx.rundir import RunDir

    made, error = None, None
    if is_main_process():
        try:
            made = make()
        except ConfigError as exc:
            error = str(exc)
    path, error = broadcast_object((None if made is None else str(made.path), error))
    if error is not None:  # every rank stops with the main process's message
        raise ConfigError(error)
    if is_main_process():
        return made
    view = RunDir(Path(path))
    view.read_only = True
    return view


def private_dir(run_dir: Path) -> Path:
    """Where this rank's components write: the run folder on the main process, a temporary
    folder (removed at exit) on the others."""
    if is_main_process():
        return run_dir
    path = Path(tempfile.mkdtemp(prefix=f"advx-rank{rank()}-"))
    atexit.register(shutil.rmtree, path, True)
    return path
