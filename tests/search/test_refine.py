"""Optuna refinement: seeded with the front, limits kept, resumable, shared by workers."""

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from mixprec import search
from mixprec.search import SearchProblem
from mixprec.search.refine import TRIALS_ATTR
from mixprec.search.study import RETRY_ATTR, WORKER_ATTR, open_storage, storage_url
from mixprec.search.trials import SearchSpace

MODEL = "mnist-vit-small"
DEVICE = "a15"
POSTGRES_URL = os.environ.get("MIXPREC_TEST_POSTGRES_URL")


def _run(storage, trials, study_name=None, budget_ms=None):
    return search.run(MODEL, budget_ms=budget_ms, device=DEVICE, refine_trials=trials,
                      storage=storage, study_name=study_name)


def _study(url, name):
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _check_every_trial_once(study, at_least):
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) >= at_least
    for t in trials:  # a failed trial (its worker died) was retried and completed
        if t.state != TrialState.COMPLETE:
            assert t.state == TrialState.FAIL, (t.number, t.state)
            assert any(r.user_attrs.get(RETRY_ATTR) == t.number and _keeps(r, t)
                       for r in complete), t.number
    return complete


def _keeps(retry, dead):
    """Whether ``retry`` kept every parameter ``dead`` had: those it was enqueued with and
    those it had drawn before its worker died (killed mid-suggestion, it has only some)."""
    recorded = {**dead.system_attrs.get("fixed_params", {}), **dead.params}
    return all(retry.params.get(name) == value for name, value in recorded.items())


def test_refinement_starts_from_the_front_and_keeps_the_budget(tmp_path):
    plain = search.run(MODEL, device=DEVICE)
    lats = [p.latency_ms for p in plain.front]
    budget = lats[0] + 0.3 * (lats[-1] - lats[0])
    result = _run(tmp_path / "s.log", 4, budget_ms=budget)
    assert result.study_name and result.storage.startswith("journal:")
    assert result.latency_ms <= budget
    refined = result.measured["refined"]
    assert refined["error_measure"] == "top-1 error"
    assert 0 <= refined["measured_error"] <= 1
    study = _study(result.storage, result.study_name)
    trials = _check_every_trial_once(study, 4)
    # the first trials are front plans (enqueued), spread from the fastest within the budget
    space = SearchSpace(SearchProblem.from_dict(study.user_attrs["mixprec"]["problem"]))
    first = space.choice_of(trials[0].params)
    fastest = min(plain.front, key=lambda p: p.latency_ms)
    assert result.plan.model_id == fastest.plan.model_id
    assert space.problem.plan(first) == fastest.plan
    for t in trials:  # the budget is a constraint of every trial
        assert set(t.constraints) == {"latency_ms"}
        assert (t.constraints["latency_ms"] <= 0) == (t.values[1] <= budget)


def test_a_resumed_study_keeps_its_trials_and_adds_the_missing_ones(tmp_path):
    first = _run(tmp_path / "s.log", 2)
    again = _run(tmp_path / "s.log", 3)
    assert again.study_name == first.study_name
    study = _study(again.storage, again.study_name)
    assert len(_check_every_trial_once(study, 3)) == 3


def test_a_study_name_taken_by_another_search_is_refused(tmp_path):
    _run(tmp_path / "s.log", 1, study_name="shared")
    with pytest.raises(ValueError, match="made for another search"):
        search.run(MODEL, device=DEVICE, budget_ms=10.0, refine_trials=1,
                   storage=tmp_path / "s.log", study_name="shared")


def test_bad_storage_and_bad_mode_combinations_are_named(tmp_path):
    with pytest.raises(ValueError, match="neither an Optuna RDB URL"):
        _run(tmp_path / "s.txt", 1)
    with pytest.raises(ValueError, match="pass one of them"):
        search.run(MODEL, device=DEVICE, max_drop=0.01, refine_trials=2)


def _worker(storage, name):
    return subprocess.Popen([sys.executable, "-m", "mixprec", "search", "--worker", "--storage",
                             str(storage), "--study", name], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _two_workers_share_a_study(storage, study_name):
    started = _run(storage, 1, study_name=study_name)
    study = _study(started.storage, started.study_name)
    study.set_user_attr(TRIALS_ATTR, 7)
    workers = [_worker(storage, started.study_name) for _ in range(2)]
    for w in workers:
        out, _ = w.communicate(timeout=600)
        assert w.returncode == 0, out
    complete = _check_every_trial_once(study, 7)
    assert len(complete) <= 8  # the two workers may each finish one trial past the count
    # every trial ran here (the first one) or in a worker; how many each worker ran depends
    # on how fast it started
    pids = {t.user_attrs[WORKER_ATTR]["pid"] for t in complete}
    worker_pids = {w.pid for w in workers}
    assert pids <= worker_pids | {os.getpid()} and pids & worker_pids


def test_two_worker_processes_share_a_journal_file_study(tmp_path):
    _two_workers_share_a_study(tmp_path / "s.log", "journal-workers")


@pytest.mark.skipif(POSTGRES_URL is None, reason="MIXPREC_TEST_POSTGRES_URL is not set "
                    "(.ci/run starts PostgreSQL with scripts/postgres.sh and sets it)")
def test_two_worker_processes_share_a_postgresql_study():
    _two_workers_share_a_study(POSTGRES_URL, f"pg-workers-{uuid.uuid4().hex[:8]}")


def test_a_study_whose_worker_was_killed_resumes_with_no_trial_lost(tmp_path):
    storage = tmp_path / "s.log"
    started = _run(storage, 1, study_name="killed")
    study = _study(started.storage, "killed")
    study.set_user_attr(TRIALS_ATTR, 5)
    worker = _worker(storage, "killed")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill it in the middle of a trial
        if _runs_a_trial(study, worker.pid):
            worker.send_signal(signal.SIGSTOP)  # frozen: its trial cannot finish meanwhile
            if _runs_a_trial(study, worker.pid):
                break
            worker.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.communicate()
    resumed = _run(storage, 5, study_name="killed")
    complete = _check_every_trial_once(_study(resumed.storage, "killed"), 5)
    failed = [t for t in _study(resumed.storage, "killed").get_trials()
              if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert len(complete) == 5


def _runs_a_trial(study, pid):
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return any(t.user_attrs.get(WORKER_ATTR, {}).get("pid") == pid for t in running)


def test_storage_forms():
    assert storage_url("runs/a/study.jsonl", "x").startswith("journal:/")
    assert storage_url("journal:/tmp/x.log", "x") == "journal:/tmp/x.log"
    assert storage_url("postgresql+psycopg://u@h/db", "x") == "postgresql+psycopg://u@h/db"
    assert storage_url(None, "name").endswith("/studies/name.db")
