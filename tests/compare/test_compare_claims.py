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
