"""The instance's SQLite storage, with each event log file kept open while it is in use.

Dagster's own SQLite event log opens a file, writes one event, commits and closes it again, for every event: a
sync run records about 250 events (and copies its asset events to the index file), and the open and the close
(SQLite checkpoints the write-ahead log when the last connection to a file closes) cost 1.2 s of every run, half
of a run that finds nothing new at 20,000 debtors. Here each file keeps one connection, so an event is an insert
and a commit. What is written, where and how durably is Dagster's own: same files, same tables, same commits.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

# Files kept open at once: a run writes its own file and the index; the UI and the daemon read a few runs.
OPEN_FILES = 8


class EventLogKeepingFilesOpen(SqliteEventLogStorage):
    """SqliteEventLogStorage with one connection per file, reused under the storage's lock."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._open: OrderedDict[str, Engine] = OrderedDict()
        super().__init__(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._open.pop(shard, None)
        if engine is None:
            # One connection, used by whichever thread holds the storage's lock (the lock serialises them).
            engine = create_engine(self.conn_string_for_shard(shard), poolclass=StaticPool,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS,
                                                 "check_same_thread": False})
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._open[shard] = engine
        while len(self._open) > OPEN_FILES:
            self._open.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # ty: ignore[invalid-method-override]
        with self._db_lock:
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def _close_files(self) -> None:
        with self._db_lock:
            while self._open:
                self._open.popitem()[1].dispose()

    def wipe(self) -> None:
        self._close_files()  # the files are deleted
        super().wipe()

    def dispose(self) -> None:
        self._close_files()
        super().dispose()


class SqliteStorageKeepingFilesOpen(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event logs, schedules under one folder) with the event log above."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = EventLogKeepingFilesOpen(self._event_log_storage._base_dir)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> SqliteStorageKeepingFilesOpen:
        return cls.from_local(inst_data=inst_data, **config_value)
