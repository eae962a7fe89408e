"""Loads that make many users (U2, M1) write them in small transactions, two at a time: while one transaction waits
on the database, Python renders the next one's emails. Each transaction is whole or absent, as one at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

Batch = TypeVar("Batch")
Result = TypeVar("Result")

# Transactions open at once: the database works on one while Python prepares another (2 cores are enough).
TRANSACTIONS_AT_ONCE = 2


def in_transactions(
    engine: Engine,
    batches: Sequence[Batch],
    work: Callable[[Connection, Batch], Result],
    *,
    at_once: int = TRANSACTIONS_AT_ONCE,
) -> Iterator[tuple[Batch, Result]]:
    """`work(conn, batch)` for each batch in a transaction of its own, `at_once` of them at a time; yields each
    (batch, result) as it commits. The first failure starts no further batch and is raised once those running
    have ended; the batches committed stay, so a rerun plans only what is left."""

    def one(batch: Batch) -> Result:
        with engine.begin() as conn:
            return work(conn, batch)

    if at_once <= 1 or len(batches) <= 1:
        for batch in batches:
            yield batch, one(batch)
        return
    waiting = iter(batches)
    none_left = object()
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="transaction") as pool:
        running: dict[Future[Result], Batch] = {}

        def start_next() -> None:
            batch = next(waiting, none_left)
            if batch is not none_left:
                running[pool.submit(one, batch)] = batch

        for _ in range(at_once):
            start_next()
        failure: BaseException | None = None
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                batch = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                yield batch, future.result()
                if failure is None:
                    start_next()
        if failure is not None:
            raise failure
