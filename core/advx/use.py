"""Use what a run trained: open a checkpoint as built components, evaluate it again, export
it, generate with it, predict with it.

    from advx.use import open_run
    with open_run("runs/cold_start/20260101-120000", round="best") as opened:
        opened.components.generator.sample(prompts)

:func:`open_run` takes the path ``--resume`` takes: the run's ``recipe.yaml`` is validated,
the components are built (``advx.runner``'s build) and the checkpoint's states are loaded with
:meth:`advx.loop.Experiment.load_weights`, the method ``Experiment.restore`` uses. The
components are built in a scratch copy of the run's build artefacts (a tiny model's
tokenizer, ``generator-tiny/``), so nothing a component writes while it is used (a task's
evaluation examples) lands in the run's own folder; loggers are not built.

The command bodies of ``advx eval``, ``advx export``, ``advx generate`` and ``advx predict``
live here too (docs/using-models.md).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import torch

from advx.components import (
    Components,
    HasInputFields,
    HasLabelNames,
    RendersPrompts,
    RequestsLabels,
    StepContext,
    SupportsExport,
)
from advx.distributed import is_main_process
from advx.errors import ConfigError, DataError
from advx.label_specific import label_posterior, most_label_specific
from advx.loop import Experiment, changed_keys, evaluation_rng
from advx.recipe import Recipe
from advx.rollout import Prompt, Sample
from advx.run_info import RunInfo
from advx.rundir import RunDir, atomic_write_text, jsonable

__all__ = [
    "EVAL_KEYS_RULE",
    "OpenedRun",
    "eval_override_problem",
    "evaluate_run",
    "export_run",
    "generate",
    "open_run",
    "predict",
    "resolve_round",
]

RoundArg = int | Literal["best"] | None

RUN_OUTPUTS = frozenset({"checkpoints", "samples", "evals", "exports"})
"""Top-level folders of a run that are its outputs, not build artefacts (never copied into
the scratch folder components are built in)."""

EVAL_KEYS_RULE = (
    "`device`, and any key whose last part contains `eval` (task.eval_temperature, "
    "task.eval_generate, task.num_eval_samples, task.eval_users, classifier.eval_batch_size)"
)


# --------------------------------------------------------------------------- opening a run


@dataclass
class OpenedRun:
    """A run's checkpoint as built components. Use as a context manager (or call
    :meth:`close`) so the scratch folder the components were built in is removed.

    Attributes:
        recipe: the run's validated recipe (with the overrides applied).
        components: the built components, the checkpoint's states loaded (no loggers).
        round: the checkpoint's round.
        run_dir: the run folder.
        experiment: the loop over these components (its ``evaluate(round)`` is the loop's
            own evaluation, on the evaluation random streams); never ``run()`` it.
    """

    recipe: Recipe
    components: Components
    round: int
    run_dir: Path
    experiment: Experiment
    scratch: Path | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def __enter__(self) -> OpenedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def existing_run(run_dir: str | Path) -> RunDir:
    """The run folder, or one ConfigError saying why it is not one."""
    path = Path(run_dir)
    if not path.exists():
        raise ConfigError(f"run folder {path} does not exist; pass a folder "
                          "runs/<recipe>/<timestamp>/ that `advx run` created")
    if not path.is_dir():
        raise ConfigError(f"{path} is a file, not a run folder")
    return RunDir.existing(path)


def parse_round(text: str | None, option: str = "--round") -> RoundArg:
    """``None`` → None, ``best`` → "best", a non-negative integer → int; else ConfigError."""
    if text is None or text == "":
        return None
    if text == "best":
        return "best"
    if text.isdigit():
        return int(text)
    raise ConfigError(f"{option} {text!r}: expected a round number (0, 1, ...) or 'best'")


def resolve_round(rundir: RunDir, round: RoundArg, monitor: str, mode: str) -> int:
    """The checkpoint round that ``round`` names: None → the newest complete checkpoint,
    ``best`` → the best evaluated round by ``loop.monitor`` (it must be checkpointed)."""
    complete = [r for r in rundir.checkpoint_rounds() if rundir.checkpoint_problem(r) is None]
    if not complete:
        raise ConfigError(f"{rundir.path} has no complete checkpoint (checkpoints/round-<n>/ "
                          "with complete.json); the run never reached its first checkpoint")
    if round is None:
        return complete[-1]
    if round == "best":
        best = best_round(rundir, monitor, mode)
        if best not in complete:
            raise ConfigError(
                f"the best round by {monitor} is {best}, but {rundir.path} has no complete "
                f"checkpoint of it (checkpointed: {complete}); keep it with loop.keep_best=true "
                "and checkpoint_every dividing eval_every, or give --round N")
        return best
    if round not in complete:
        raise ConfigError(f"{rundir.path} has no complete checkpoint of round {round}; "
                          f"complete checkpoints: {complete}")
    return round


def best_round(rundir: RunDir, monitor: str, mode: str) -> int:
    """The best evaluated round by ``monitor`` in metrics.jsonl (NaN/None skipped). A round
    record without ``evaluated`` (a loop from before the key) counts as evaluated, as in
    :meth:`advx.results.Run.evaluated_rounds`; ties go to the earlier round, as in the loop."""
    if not monitor:
        raise ConfigError(f"{rundir.recipe_path} sets no loop.monitor, so no round is 'best'; "
                          "give a round number instead")
    scored = [(float(r[monitor]), int(r["round"])) for r in rundir.read_metrics()
              if r.get("kind") == "round" and r.get("evaluated", True)
              and isinstance(r.get(monitor), (int, float)) and not isinstance(r[monitor], bool)]
    if not scored:
        raise ConfigError(f"{monitor} (loop.monitor) was never logged in {rundir.metrics_path}; "
                          "give a round number instead")
    if mode == "min":
        return min(scored, key=lambda vr: (vr[0], vr[1]))[1]
    return max(scored, key=lambda vr: (vr[0], -vr[1]))[1]


def _scratch_copy(rundir: RunDir) -> Path:
    """A temporary folder holding the run's build artefacts (its top-level folders that are
    not outputs), so components rebuild exactly as ``--resume`` rebuilds them."""
    scratch = Path(tempfile.mkdtemp(prefix="advx-open-"))
    for child in rundir.path.iterdir():
        if child.is_dir() and child.name not in RUN_OUTPUTS:
            shutil.copytree(child, scratch / child.name, symlinks=True)
    return scratch


def eval_override_problem(key: str) -> str | None:
    """Why ``key`` may not be overridden by ``advx eval`` (None: it may). The rule: keys
    that change only how a checkpoint is evaluated, never what it is (EVAL_KEYS_RULE)."""
    if key == "device" or "eval" in key.rsplit(".", 1)[-1]:
        return None
    return (f"{key} is not an evaluation key: it would change the model, not how it is "
            f"evaluated. advx eval accepts {EVAL_KEYS_RULE}; to change {key}, start a new "
            "run (`advx run --from RUN_DIR RECIPE ...`)")


def _override_keys(overrides: Sequence[str]) -> list[str]:
    keys = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. "
                              "task.eval_temperature=0.7")
        keys.append(item.split("=", 1)[0].strip().lstrip("+~"))
    return keys


def open_run(run_dir: str | Path, round: RoundArg = None, overrides: Sequence[str] = (),
             plugins: Sequence[object] = ()) -> OpenedRun:
    """Open checkpoint ``round`` of ``run_dir`` (None: the newest complete one, ``"best"``:
    the best by ``loop.monitor``) as built components.

    ``overrides`` (``key=value``) apply on top of the run's recipe.yaml; they may change
    only evaluation keys (:func:`eval_override_problem`), since the weights are the ones the
    checkpoint trained. Errors (no run, no checkpoint, a foreign recipe) are ConfigErrors.
    """
    from advx.runner import _saved_recipe, prepare_recipe, run_plugins

    rundir = existing_run(run_dir)
    for key in _override_keys(overrides):
        problem = eval_override_problem(key)
        if problem:
            raise ConfigError(problem)
    _saved_recipe(rundir)  # one message when recipe.yaml is not YAML
    with run_plugins(plugins) as pm:
        spec = prepare_recipe(rundir.recipe_path, overrides, pm)
        at = resolve_round(rundir, round, spec.loop.monitor, str(spec.loop.monitor_mode))
        experiment, scratch = build_at(spec, rundir, pm)
    try:
        parts, at = experiment.read_checkpoint(at)
        trained = parts["loop"].get("recipe")
        if trained is not None:
            overridden = set(_override_keys(overrides))
            changed = [c for c in changed_keys(trained, spec.resolved)
                       if c[0] not in overridden and eval_override_problem(c[0]) is not None]
            if changed:
                key, old, new = changed[0]
                raise ConfigError(
                    f"{rundir.recipe_path} is not the recipe this run's checkpoint was trained "
                    f"with: {key} is {new!r} there but {old!r} in the checkpoint; restore the "
                    "run's own recipe.yaml")
        experiment.load_weights(parts, at)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return OpenedRun(recipe=spec, components=experiment.c, round=at, run_dir=rundir.path,
                     experiment=experiment, scratch=scratch)


def build_at(spec: Recipe, rundir: RunDir, pm: Any) -> tuple[Experiment, Path]:
    """Build ``spec``'s components (no loggers) in a scratch copy of ``rundir``'s build
    artefacts, seeded as a run is, and the Experiment over them reading ``rundir``."""
    from advx.build import build_components
    from advx.loop import seed_everything

    scratch = _scratch_copy(rundir)
    try:
        seed_everything(spec.seed)
        components, _ = build_components(dataclasses.replace(spec, loggers=[]), scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    info = RunInfo(name=spec.name, run_dir=rundir.path, recipe=spec.resolved, seed=spec.seed)
    return Experiment(components, spec.loop, rundir, info, pm.hook), scratch


# --------------------------------------------------------------------------- advx eval


def evaluate_run(run_dir: str | Path, round: RoundArg = None, overrides: Sequence[str] = (),
                 name: str | None = None, plugins: Sequence[object] = ()
                 ) -> tuple[Path, dict[str, Any]]:
    """Evaluate a checkpoint again (the loop's ``task.evaluate`` on its evaluation random
    streams, so the same checkpoint and overrides give the same numbers) and write
    ``RUN_DIR/evals/<name>.json``: ``{run_dir, round, requested_round, overrides, metrics,
    created}`` (``requested_round``: ``final``, ``best`` or the number asked for; ``round``:
    the checkpoint it named).
    Nothing else of the run folder is touched. Returns the file and the record. Under a
    launcher (``torchrun ... -m advx eval``) the task's evaluation is sharded where it shards
    (``next_item``'s beam search, the classifier's scoring) and the main process writes."""
    if name is not None and (not name or "/" in name or name.startswith(".")):
        raise ConfigError(f"--name {name!r}: expected a plain file name such as 'temp-0.7'")
    with open_run(run_dir, round, overrides, plugins) as opened:
        if opened.components.task is None:
            raise ConfigError(f"{opened.run_dir}'s recipe has no task to evaluate with")
        metrics = opened.experiment.evaluate(opened.round)
    stamp = datetime.now(timezone.utc)
    record = {"run_dir": str(opened.run_dir), "round": opened.round,
              "requested_round": "final" if round is None else round,
              "overrides": list(overrides), "metrics": metrics,
              "created": stamp.isoformat(timespec="seconds")}
    evals = opened.run_dir / "evals"
    base = name or f"round-{opened.round}-{stamp.strftime('%Y%m%d-%H%M%S')}"
    out = evals / f"{base}.json"
    k = 1
    while name is None and out.exists():
        out, k = evals / f"{base}-{k}.json", k + 1
    if is_main_process():  # under a launcher every rank holds the same metrics: one writes
        atomic_write_text(out, json.dumps(jsonable(record), indent=2) + "\n")
    return out, record


# --------------------------------------------------------------------------- advx export


def export_run(run_dir: str | Path, out: Path, round: RoundArg = None) -> dict[str, Path]:
    """Write each trained component that has one (generator, classifier) with its
    :class:`SupportsExport` ``export`` into ``out/<kind>/``; returns kind → folder.

    A present component without ``export`` is a ConfigError, raised before anything is
    written; ``out`` must be new or empty.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; give a new folder")
    with open_run(run_dir, round) as opened:
        parts = {kind: getattr(opened.components, kind) for kind in ("generator", "classifier")}
        parts = {k: v for k, v in parts.items() if v is not None}
        if not parts:
            raise ConfigError(f"{opened.run_dir}'s recipe has no generator or classifier to "
                              "export")
        for kind, component in parts.items():
            if not isinstance(component, SupportsExport):
                block = opened.recipe.components[kind].spec
                raise ConfigError(
                    f"{kind} {block.name!r} (plugin {block.plugin!r}) cannot be exported: "
                    f"{type(component).__name__} has no export(path) method (advx.use."
                    "SupportsExport). Its weights are in the run's checkpoints/ "
                    "(load them with advx.use.open_run)")
        written = {}
        for kind, component in parts.items():
            component.export(out / kind)
            written[kind] = out / kind
        info = {"run_dir": str(opened.run_dir), "round": opened.round,
                "components": {k: opened.recipe.components[k].spec.name for k in written}}
        atomic_write_text(out / "advx_export.json", json.dumps(info, indent=2) + "\n")
    return written


# --------------------------------------------------------------------------- prompts


def read_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.csv`` (header row) or ``.jsonl`` (one JSON object per line) file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (or is not a file)")
    try:
        # utf-8-sig: a spreadsheet's CSV export starts with a byte-order mark, which would
        # otherwise become part of the first column's name ('\ufeffquery')
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not readable UTF-8 text ({exc})") from exc
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        rows = []
        for row in reader:
            if None in row:  # csv puts the fields beyond the header under the key None
                header = list(reader.fieldnames or [])
                raise DataError(
                    f"{path} line {reader.line_num} has {len(header) + len(row[None])} fields, "
                    f"the header {len(header)} ({', '.join(header)}); quote a field that holds "
                    "a comma")
            rows.append(dict(row))
        return rows
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path} line {number} is not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path} line {number}: expected a JSON object (a record)")
            rows.append(row)
        return rows
    raise ConfigError(f"{path}: expected a .csv or .jsonl file")


def prompts_from_file(task: Any, path: Path) -> list[Prompt]:
    """Prompts from a file: through the task's ``prompts_from_records`` when it has one
    (product fields for the product-relevance task), else JSONL records
    ``{"text": ..., "meta": {...}}`` taken as they are."""
    records = read_records(path)
    if not records:
        raise DataError(f"{path} holds no records")
    if isinstance(task, RendersPrompts):
        return list(task.prompts_from_records(records, source=str(path)))
    prompts = []
    for i, record in enumerate(records, start=1):
        if not isinstance(record.get("text"), str):
            raise DataError(f"{path} record {i}: expected a 'text' field (the prompt); this "
                            f"task ({type(task).__name__}) takes records {{text, meta}}")
        prompts.append(Prompt(text=record["text"], meta=dict(record.get("meta") or {})))
    return prompts


def split_prompts(task: Any, split: str) -> list[Prompt]:
    """``--split cold``: the task's prompts for its cold-start items."""
    if split != "cold":
        raise ConfigError(f"--split {split!r}: only 'cold' is known")
    if not isinstance(task, RendersPrompts):
        raise ConfigError(f"--split cold: the task {type(task).__name__} has no cold split "
                          "(no cold_prompts()); give --prompts FILE")
    return list(task.cold_prompts())


# --------------------------------------------------------------------------- advx generate


def _label_names(task: Any, num: int) -> list[str]:
    names = list(task.label_names) if isinstance(task, HasLabelNames) else []
    return names if len(names) == num else [str(i) for i in range(num)]


def generate(run_dir: str | Path, out: Path, round: RoundArg = None,
             prompts_file: Path | None = None, split: str | None = None, n: int = 1,
             temperature: float = 1.0, candidates: int = 1) -> int:
    """Sample ``n`` texts per prompt from the checkpoint's generator and write JSONL rows
    (see docs/using-models.md for the columns); returns the number of rows.

    ``candidates`` k > 1 samples k texts for each of the ``n`` and keeps the one the
    generator itself finds most specific to the requested label (:mod:`advx.label_specific`,
    what ``loop.augment_candidates`` does in training): the measured way to get queries that
    match their label (docs/results/cold_start.md, "Best-of-k by the generator's label
    posterior")."""
    if (prompts_file is None) == (split is None):
        raise ConfigError("give exactly one of --prompts FILE or --split cold")
    if n < 1:
        raise ConfigError(f"--n {n}: expected at least 1 sample per prompt")
    if candidates < 1:
        raise ConfigError(f"--candidates {candidates}: expected at least 1 (1: no selection)")
    if not temperature > 0:
        raise ConfigError(f"--temperature {temperature}: expected a number > 0")
    _check_out(out, ".jsonl")
    with open_run(run_dir, round) as opened:
        c = opened.components
        if c.generator is None:
            raise ConfigError(f"{opened.run_dir}'s recipe has no generator")
        if candidates > 1 and not isinstance(c.task, RequestsLabels):
            raise ConfigError(f"--candidates {candidates}: the task {type(c.task).__name__} "
                              "does not ask for labels in its prompts (no RequestsLabels), so "
                              "there is no label to select for; use --candidates 1")
        if prompts_file is not None:
            prompts = prompts_from_file(c.task, prompts_file)
        else:
            prompts = split_prompts(c.task, split or "")
        with evaluation_rng(opened.recipe.seed, opened.round), torch.no_grad():
            rows = _generate_rows(opened, prompts, n, temperature, candidates)
    atomic_write_text(out, "".join(json.dumps(jsonable(r), ensure_ascii=False) + "\n"
                                   for r in rows))
    return len(rows)


def _generate_rows(opened: OpenedRun, prompts: list[Prompt], n: int, temperature: float,
                   candidates: int) -> list[dict[str, Any]]:
    c, experiment = opened.components, opened.experiment
    rollout = c.generator.sample(prompts, n=n * candidates, temperature=temperature)
    posterior = None
    if isinstance(c.task, RequestsLabels):  # log p(requested label | text, prompt)
        if candidates > 1:
            rollout, posterior = most_label_specific(c.generator, c.task, rollout, candidates)
        else:
            posterior = label_posterior(c.generator, c.task, rollout)
    mask = rollout.response_mask.to(rollout.logprobs.dtype)
    logprob = (rollout.logprobs * mask).sum(-1).float().cpu().tolist()
    tokens = rollout.lengths.cpu().tolist()
    rows: list[dict[str, Any]] = []
    for i, (prompt, text) in enumerate(zip(rollout.prompts, rollout.texts, strict=True)):
        meta = {k: v for k, v in prompt.meta.items() if k != "cold"}
        rows.append({"prompt": prompt.text, **meta, "text": text.strip(),
                     "logprob": logprob[i], "tokens": tokens[i]})
        if posterior is not None:
            rows[-1]["label_posterior"] = float(posterior[i])
    if c.classifier is not None:
        samples = [Sample(text=t.strip(), prompt=p, label=p.meta.get("label"))
                   for p, t in zip(rollout.prompts, rollout.texts, strict=True)]
        probs = c.classifier.predict_proba(samples).float().cpu()
        names = _label_names(c.task, probs.shape[1])
        for row, sample, p in zip(rows, samples, probs.tolist(), strict=True):
            row.update({f"p_{name}": v for name, v in zip(names, p, strict=True)})
            if isinstance(sample.label, int) and 0 <= sample.label < len(p):
                row["score"] = p[sample.label]  # P(the label the prompt asked for)
    if c.reward is not None:
        if experiment.reference is not None:
            rollout.ref_logprobs = experiment.reference.policy_outputs(rollout).logprobs
        ctx = StepContext(task=c.task, generator=c.generator, classifier=c.classifier,
                          reference=experiment.reference, round=opened.round, step=0,
                          rng=experiment.rng)
        rewards = c.reward(rollout, ctx)
        total = rewards.total.float().cpu().tolist()
        terms = {k: v.float().cpu().tolist() for k, v in rewards.terms.items()}
        for i, row in enumerate(rows):
            row["reward"] = total[i]
            row.update({f"reward/{k}": v[i] for k, v in terms.items()})
    return rows


def _check_out(out: Path | None, suffix: str) -> None:
    if out is None:
        raise ConfigError(f"missing --out FILE{suffix}")
    out = Path(out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name ending in {suffix}")
    if out.suffix.lower() != suffix:
        raise ConfigError(f"--out {out}: expected a file name ending in {suffix}")


# --------------------------------------------------------------------------- advx predict


def input_columns(classifier: Any) -> list[str]:
    """The CSV columns ``advx predict`` needs: ``query`` and every other field of the
    classifier's input template (``classifier.input``, e.g. ``"{query} | {title}"``)."""
    names = classifier.input_fields() if isinstance(classifier, HasInputFields) else []
    return list(dict.fromkeys(["query", *names]))


def predict(run_dir: str | Path, input_file: Path, out: Path, round: RoundArg = None) -> int:
    """Class probabilities for each row of ``input_file`` (a CSV with the classifier's input
    columns), written to ``out`` as the input columns plus ``p_<label>`` per class and
    ``predicted``; returns the number of rows."""
    _check_out(out, ".csv")
    input_file = Path(input_file)
    if input_file.suffix.lower() != ".csv":
        raise ConfigError(f"--input {input_file}: expected a .csv file")
    records = read_records(input_file)
    with open_run(run_dir, round) as opened:
        classifier = opened.components.classifier
        if classifier is None:
            raise ConfigError(f"{opened.run_dir}'s recipe has no classifier")
        needed = input_columns(classifier)
        header = list(records[0]) if records else _csv_header(input_file)
        missing = [col for col in needed if col not in header]
        if missing:
            raise DataError(
                f"{input_file} has no column {missing[0]!r}; the classifier's input "
                f"template needs the columns {needed} (found {header})")
        samples = [Sample(text=r["query"] or "", prompt=Prompt(
            text="", meta={k: (r[k] or "") for k in needed if k != "query"})) for r in records]
        probs = classifier.predict_proba(samples).float().cpu() if samples else None
        task = opened.components.task
        num = probs.shape[1] if probs is not None else (
            len(task.label_names) if isinstance(task, HasLabelNames) else 0)
        names = _label_names(task, num)
    buffer = io.StringIO()
    fields = [*header, *(f"p_{name}" for name in names), "predicted"]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for record, p in zip(records, [] if probs is None else probs.tolist(), strict=True):
        best = max(range(len(p)), key=p.__getitem__)
        writer.writerow({**record, **{f"p_{n}": v for n, v in zip(names, p, strict=True)},
                         "predicted": names[best]})
    atomic_write_text(Path(out), buffer.getvalue())
    return len(records)


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])
