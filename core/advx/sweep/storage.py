"""Where studies live: storage URLs and drivers, one function API.

    url = resolve_storage_url(None, "alpha_beta")   # sqlite:///<abs>/runs/sweeps/alpha_beta.db
    storage = make_storage(url)                     # an optuna RDBStorage (or a ConfigError)

SQLite is the default (one file per study under ``runs/sweeps/``); PostgreSQL URLs
(``postgresql://user:pw@host:5432/db``) use whichever of psycopg 3 / psycopg2 is installed.
Anything that records cells in the same kind of storage (``advx compare``) uses these
functions too, so the URL rules and the error messages are the same everywhere.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from advx.errors import ConfigError

__all__ = [
    "default_storage_url", "make_storage", "resolve_storage_url", "safe_url", "sqlite_path",
]


def default_storage_url(name: str, runs_root: Path = Path("runs")) -> str:
    """The embedded default: one SQLite file per study under ``runs/sweeps/``."""
    return f"sqlite:///{(Path(runs_root) / 'sweeps' / f'{name}.db').resolve()}"


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats (a killed worker's trial is failed, not left RUNNING).

    A malformed URL, an unknown database driver or an unreachable server is a ConfigError.
    """
    import sqlalchemy
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"storage: {url!r} is not a database URL; use sqlite:///path/to/study.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from exc
    if parsed.drivername == "postgresql":
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; advx[postgres] installs
        # psycopg2-binary. Use whichever driver is installed.
        parsed = parsed.set(drivername=f"postgresql+{_postgres_driver()}")
        url = parsed.render_as_string(hide_password=False)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database:
            raise ConfigError(f"storage: {url!r} names no SQLite file (sqlite:///runs/x.db)")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Several worker processes share the file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        return _rdb_storage(url, engine_kwargs)
    except (sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        raise ConfigError(
            f"storage: no database driver for {parsed.drivername!r} ({exc}); for PostgreSQL "
            "install psycopg2-binary (pip install 'advx[postgres]')"
        ) from exc
    except (sqlalchemy.exc.DBAPIError, sqlalchemy.exc.ArgumentError) as exc:
        # DBAPIError: unreachable server, and also a file that is not a database at all.
        safe = parsed.render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise ConfigError(f"storage: cannot open {safe}: {reason}") from exc
    except RuntimeError as exc:  # Optuna: a database of another schema version, or not its own
        safe = parsed.render_as_string(hide_password=True)
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(f"storage: {safe} is not an Optuna study database this version "
                          f"can read: {reason}") from exc


def _rdb_storage(url: str, engine_kwargs: dict[str, Any]) -> optuna.storages.RDBStorage:
    """``RDBStorage``, retried when workers starting together race to create its tables.

    On an empty PostgreSQL database two workers may both try ``CREATE TYPE``/``CREATE
    TABLE``; the loser gets an IntegrityError/ProgrammingError, and a retry finds the schema.
    On a new SQLite file the loser gets an OperationalError "table ... already exists"
    (seen when two ``advx compare`` workers start at the same moment).
    """
    import random

    import sqlalchemy

    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=30, grace_period=120
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as exc:
            lost_race = not isinstance(exc, sqlalchemy.exc.OperationalError) or (
                "already exists" in str(exc))
            if attempt == 4 or not lost_race:
                raise
            time.sleep(0.5 + random.random())
    raise AssertionError("unreachable")  # pragma: no cover


def _postgres_driver() -> str:
    import importlib.util

    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return driver
    return "psycopg2"  # not installed: the error below says what to install


def resolve_storage_url(url: str | None, name: str, runs_root: Path = Path("runs")) -> str:
    """``url`` when given, else the default SQLite file of the study ``name``."""
    return url or default_storage_url(name, runs_root)


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other databases)."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def safe_url(url: str) -> str:
    """``url`` with its password hidden (for messages and logs)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url
