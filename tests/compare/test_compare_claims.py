"""The exactly-once machinery of advx.compare.cells, exercised directly (fast, in-process)."""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from advx.compare import load_compare
from advx.compare.cells import _claim, cells_of, make_storage, open_study, storage_url, work
from compare_helpers import write_compare
from optuna.trial import TrialState

PG_URL = os.environ.get("ADVX_TEST_POSTGRES_URL")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="ADVX_TEST_POSTGRES_URL is not set (.ci/postgres.sh)"),
])])
def test_one_claim_wins_among_many_concurrent_ones(toy, backend):
    name = f"toy_claim_{uuid.uuid4().hex[:8]}"  # a fresh study in a shared database
    spec = load_compare(write_compare(toy, name=name))
    url = PG_URL if backend == "postgres" else storage_url(spec, None, toy / "runs")
    study, _ = open_study(spec, url)
    study.enqueue_trial({}, user_attrs={"condition": "low", "seed": 0})
    trial_id = study.get_trials()[0]._trial_id
    storages = [make_storage(url) for _ in range(8)]  # one engine each, like processes
    start, wins = threading.Barrier(len(storages)), []

    def claim(storage):
        start.wait()
        wins.append(_claim(storage, trial_id))

    threads = [threading.Thread(target=claim, args=(s,)) for s in storages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    assert make_storage(url).get_trial(trial_id).state == TrialState.RUNNING


def test_a_cell_enqueued_twice_runs_once(toy):
    """Two workers that start together may both enqueue every cell: the second trial of a
    cell is superseded (PRUNED), not run."""
    spec = load_compare(write_compare(toy, seeds=2, overrides=[f"task.marker={toy / 'marks'}"]))
    url = storage_url(spec, None, toy / "runs")
    study, _ = open_study(spec, url)
    for _ in range(2):
        for condition, seed in spec.cells:
            study.enqueue_trial({}, user_attrs={"condition": condition, "seed": seed,
                                                "attempt": 1})
    assert work(spec, url, toy / "runs") == len(spec.cells)
    trials = make_storage(url).get_all_trials(study._study_id)
    assert [t.state for t in trials[:4]] == [TrialState.COMPLETE] * 4
    assert all(t.state == TrialState.PRUNED and t.user_attrs["superseded"] for t in trials[4:])
    assert len(list((toy / "marks").iterdir())) == len(spec.cells) * 4  # 4 evaluations a run
    assert [c.state for c in cells_of(spec, trials)] == ["done"] * 4


def test_cells_are_claimed_in_the_files_order_whatever_their_trial_numbers(toy):
    """A cell enqueued again later (an interrupted run: a new trial with a higher number)
    is claimed with its seed, before the cells of later seeds, not after all of them."""
    from advx.compare.cells import _next_cell

    spec = load_compare(write_compare(toy, seeds=2))
    url = storage_url(spec, None, toy / "runs")
    study, _ = open_study(spec, url)
    storage = make_storage(url)
    late = [cell for cell in spec.cells if cell[1] == 0][-1]  # seed 0's last condition
    for condition, seed in spec.cells:
        if (condition, seed) != late:
            study.enqueue_trial({}, user_attrs={"condition": condition, "seed": seed})
    study.enqueue_trial({}, user_attrs={"condition": late[0], "seed": late[1],
                                        "attempt": 2})  # the highest trial number
    claimed = []
    while (trial := _next_cell(spec, study, storage)[0]) is not None:
        claimed.append((trial.user_attrs["condition"], trial.user_attrs["seed"]))
    assert claimed == spec.cells
