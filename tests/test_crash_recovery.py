"""Every write is safe to repeat: a sync killed at any point and run again ends as one clean run would.

A real `userdebtor sync` process is killed (SIGKILL) at several moments, then run again to the end; a twin
database seeded identically has one clean run. The two must hold the same debtors, users, links and emails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from tests.support import digest, write_settings
from userdebtor_pipeline.runner import run_sync
from userdebtor_pipeline.schema import init_databases
from userdebtor_pipeline.seed import seed_databases

STATE_QUERIES = {
    "debtors": "SELECT dr_cust_code, dr_cust_name, lower(dr_email) FROM erp.deb_master ORDER BY 1",
    "users": "SELECT lower(email_address), default_customer_code, status, name FROM web.app_user ORDER BY 1",
    "links": "SELECT lower(u.email_address), l.dr_cust_code, l.state FROM userdebtor.user_debtor_link l"
    " JOIN web.app_user u USING (user_id) ORDER BY 1",
    "accounts": "SELECT lower(u.email_address), c.customer_code FROM web.user_customer c"
    " JOIN web.app_user u USING (user_id) ORDER BY 1, 2",
    "emails": "SELECT template, lower(to_address), status, subject FROM web.email_outbox ORDER BY 1, 2, 3, 4",
    "conversions": "SELECT conversion_seq, outcome FROM web.customer_conversion ORDER BY 1",
    "customers": "SELECT customer_code, status FROM web.customer ORDER BY 1",
}


def _seeded(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    init_databases(engine, engine)
    seed_databases(engine, engine, debtors=400, users=400, seed=11)
    return engine


def _state(engine: sa.Engine) -> dict[str, str]:
    return {name: digest(engine, query) for name, query in STATE_QUERIES.items()}


def _rows(engine: sa.Engine, query: str) -> Counter:
    """The rows as a multiset: a row twice is a difference."""
    with engine.connect() as conn:
        return Counter(tuple(r) for r in conn.execute(sa.text(query)))


def _runs(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM userdebtor.sync_run")).scalar()


def _env(url: str, home, config) -> dict[str, str]:
    return {
        **os.environ,
        "USERDEBTOR_ERP_URL": url,
        "USERDEBTOR_WEB_URL": url,
        "USERDEBTOR_HOME": str(home),
        "USERDEBTOR_CONFIG": str(config),
    }


@pytest.mark.slow
def test_killed_runs_then_a_rerun_end_like_one_clean_run(pg_urls, tmp_path, monkeypatch):
    config = write_settings(tmp_path / "userdebtor.yaml", safety={"max_change_fraction": 1.0})
    killed_url, clean_url = pg_urls(), pg_urls()
    killed, clean = _seeded(killed_url), _seeded(clean_url)
    assert _state(killed) == _state(clean), "the twins start equal"

    # Kill the same sync at several moments after it started: extract, conversions, planning and the loads.
    # The moments count from the run's own start (its sync_run row), so a slow machine shifts nothing.
    env = _env(killed_url, tmp_path / "home-killed", config)
    for after_start in (0.0, 0.4, 0.8, 1.5, 2.5, 4.0):
        started = _runs(killed)
        process = subprocess.Popen(
            [sys.executable, "-m", "userdebtor_pipeline.cli", "sync"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while _runs(killed) == started and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after_start)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    with killed.connect() as conn:
        interrupted = conn.execute(sa.text("SELECT count(*) FROM userdebtor.sync_run WHERE outcome IS NULL")).scalar()
    assert interrupted >= 3, "the kills landed inside runs, not before them"

    for name, value in (
        ("USERDEBTOR_ERP_URL", killed_url),
        ("USERDEBTOR_WEB_URL", killed_url),
        ("USERDEBTOR_HOME", str(tmp_path / "home-killed")),
        ("USERDEBTOR_CONFIG", str(config)),
    ):
        monkeypatch.setenv(name, value)
    assert run_sync().success
    for name, value in (
        ("USERDEBTOR_ERP_URL", clean_url),
        ("USERDEBTOR_WEB_URL", clean_url),
        ("USERDEBTOR_HOME", str(tmp_path / "home-clean")),
    ):
        monkeypatch.setenv(name, value)
    assert run_sync().success

    for name, query in STATE_QUERIES.items():
        if digest(killed, query) != digest(clean, query):  # say which rows differ, not only that they do
            after_kills, after_clean = _rows(killed, query), _rows(clean, query)
            pytest.fail(
                f"{name} differ: only after the kills {list((after_kills - after_clean).items())[:10]}, "
                f"only after the clean run {list((after_clean - after_kills).items())[:10]}"
            )
    # No debtor twice for a user, no code used twice, no email twice.
    assert digest(killed, "SELECT user_id FROM userdebtor.user_debtor_link GROUP BY 1 HAVING count(*) > 1") == digest(
        killed, "SELECT 1 WHERE false"
    )
    duplicates = (
        "SELECT lower(dr_email) FROM erp.deb_master WHERE dr_cust_code LIKE 'WEB%' GROUP BY 1 HAVING count(*) > 1"
    )
    assert digest(killed, duplicates) == digest(killed, "SELECT 1 WHERE false")
    killed.dispose()
    clean.dispose()
