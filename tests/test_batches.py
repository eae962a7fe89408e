"""The loads that make many users (U2, M1) run their transactions two at a time: each whole or absent, and the
first failure ends the load with every batch before it kept."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userdebtor_pipeline.defs.batches import in_transactions


@pytest.fixture
def engine(pg_urls: Callable[[], str]) -> Iterator[Engine]:
    engine = sa.create_engine(pg_urls())
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE made (batch integer, n integer)")
    yield engine
    engine.dispose()


def _made(engine: Engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql("SELECT batch, n FROM made ORDER BY batch, n")]


def test_every_batch_commits_in_its_own_transaction_two_at_a_time(engine: Engine):
    threads: set[str] = set()

    def work(conn: Connection, batch: int) -> int:
        threads.add(threading.current_thread().name)
        conn.execute(sa.text("INSERT INTO made SELECT :b, n FROM generate_series(1, 3) n"), {"b": batch})
        return batch * 10

    results = dict(in_transactions(engine, list(range(6)), work))

    assert results == {b: b * 10 for b in range(6)}
    assert _made(engine) == [(b, n) for b in range(6) for n in (1, 2, 3)]
    assert len(threads) == 2


def test_a_failed_batch_leaves_nothing_half_made_and_starts_no_further_batch(engine: Engine):
    def work(conn: Connection, batch: int) -> None:
        conn.execute(sa.text("INSERT INTO made VALUES (:b, 1)"), {"b": batch})
        if batch == 2:
            raise RuntimeError("batch 2 broke")

    seen = []
    with pytest.raises(RuntimeError, match="batch 2 broke"):
        for batch, _ in in_transactions(engine, list(range(50)), work):
            seen.append(batch)

    made = [batch for batch, _ in _made(engine)]
    assert 2 not in made  # rolled back whole
    assert sorted(seen) == made  # what was reported is what was committed
    assert {0, 1} <= set(made) and len(made) < 10  # no batch started after the failure was seen
