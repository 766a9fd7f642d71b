"""Where refinement studies live: Optuna storages, and trials whose process died.

A storage is given as an Optuna RDB URL (``sqlite:///runs/a/study.db``,
``postgresql://user@host/db``), as a journal file (a path ending in ``.log``, ``.jsonl`` or
``.journal``, or ``journal:PATH``), or not at all (an SQLite file under the cache root). RDB
storages keep a heartbeat: a trial whose worker stopped beating is failed by the next worker
and retried with the same parameters. Journal files have no heartbeat; there a trial left
running by a process of this host that no longer exists is failed and retried the same way
when a worker starts.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from mixprec.cost_models.cache import cache_root

HEARTBEAT_S = 10
"""Seconds between a running trial's heartbeats (RDB storages)."""
GRACE_S = 30
"""Seconds without a heartbeat after which a running trial counts as dead."""
JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
RDB_SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")
WORKER_ATTR = "mixprec_worker"
RETRY_ATTR = "mixprec_retry_of"


def default_storage(study_name: str) -> str:
    """The SQLite URL a study gets when none is given (``<cache root>/studies/<name>.db``)."""
    folder = cache_root() / "studies"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / study_name}.db"


def storage_url(storage: str | Path | None, study_name: str) -> str:
    """``storage`` as a URL or ``journal:PATH`` (None: :func:`default_storage`)."""
    if storage is None:
        return default_storage(study_name)
    text = str(storage)
    if text.startswith("journal:"):
        return text
    if text.endswith(JOURNAL_SUFFIXES):
        return f"journal:{Path(text).resolve()}"
    scheme = text.split(":", 1)[0].split("+", 1)[0]
    if "://" in text and scheme in RDB_SCHEMES:
        return text
    raise ValueError(f"storage {text!r} is neither an Optuna RDB URL ({', '.join(RDB_SCHEMES)}"
                     f"://...) nor a journal file (journal:PATH, or a path ending in "
                     f"{' / '.join(JOURNAL_SUFFIXES)})")


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S
                 ) -> BaseStorage:
    """The Optuna storage of a :func:`storage_url` (RDB storages with a heartbeat)."""
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    with warnings.catch_warnings():  # Optuna 5 still calls its heartbeat experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
        return RDBStorage(url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                          heartbeat_stale_trial_callback=retry)


def mark_worker(trial: optuna.Trial) -> None:
    """Record which process runs ``trial`` (to recover it if that process dies)."""
    trial.set_user_attr(WORKER_ATTR, {"host": socket.gethostname(), "pid": os.getpid()})


def retry_dead_trials(study: optuna.Study, storage: BaseStorage) -> int:
    """Fail every running trial of a process of this host that no longer exists and enqueue
    it again with its parameters; the number of trials retried."""
    retried = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER_ATTR)
        if not worker or worker["host"] != socket.gethostname() or _alive(worker["pid"]):
            continue
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
        study.enqueue_trial(params, user_attrs={RETRY_ATTR: trial.number},
                            skip_if_exists=False)
        retried += 1
    return retried


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
