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
from email import message_from_bytes, policy

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


def _latest_run(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT run_id FROM userdebtor.sync_run ORDER BY started_at DESC LIMIT 1")).scalar()


def _scalar(engine: sa.Engine, query: str, **params) -> object:
    with engine.connect() as conn:
        return conn.execute(sa.text(query), params).scalar()


# Moments inside a run, each a test on the killed database (and its mail folder) polled until it holds.
def _after(seconds: float):
    def moment(engine: sa.Engine, home) -> bool:
        time.sleep(seconds)
        return True

    return moment


def _plan_verdict_taken(engine: sa.Engine, home) -> bool:
    """The user/debtor plan is made and the guard's verdict taken: the loads are starting."""
    return bool(_scalar(engine, "SELECT summary ? 'change_guard' FROM userdebtor.sync_run WHERE run_id = :r",
                        r=_latest_run(engine)))


def _new_links_being_synced(engine: sa.Engine, home) -> bool:
    """U1 and U2 have linked pairs in this run: their field changes and the later plans follow."""
    return bool(_scalar(engine, "SELECT count(*) FROM userdebtor.user_debtor_link l JOIN userdebtor.sync_run r"
                                " ON r.run_id = :r WHERE l.change_seq > r.plan_seq", r=_latest_run(engine)))


def _order_history_planned(engine: sa.Engine, home) -> bool:
    """The order history is planned, after every load that makes users, links and customer rows."""
    return bool(_scalar(engine, "SELECT count(*) FROM userdebtor.plan_order_history_run WHERE run_id = :r",
                        r=_latest_run(engine)))


def _delivering(engine: sa.Engine, home) -> bool:
    """The first emails of the run are in the mail folder: delivery is under way."""
    folder = home / "mail" / "new"
    return folder.exists() and any(folder.iterdir())


def _kill_at(killed: sa.Engine, env: dict[str, str], home, moments) -> None:
    """Start `userdebtor sync` and SIGKILL it at each moment in turn, one run per moment."""
    for moment in moments:
        started = _runs(killed)
        process = subprocess.Popen(
            [sys.executable, "-m", "userdebtor_pipeline.cli", "sync"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        # The moments count from the run's own start (its sync_run row), so a slow machine shifts nothing.
        while _runs(killed) == started and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        while process.poll() is None and time.monotonic() < deadline and not moment(killed, home):
            time.sleep(0.02)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _killed_runs_end_like_one_clean_run(pg_urls, tmp_path, monkeypatch, moments, min_interrupted: int) -> sa.Engine:
    config = write_settings(tmp_path / "userdebtor.yaml", safety={"max_change_fraction": 1.0})
    killed_url, clean_url = pg_urls(), pg_urls()
    killed, clean = _seeded(killed_url), _seeded(clean_url)
    assert _state(killed) == _state(clean), "the twins start equal"

    _kill_at(killed, _env(killed_url, tmp_path / "home-killed", config), tmp_path / "home-killed", moments)

    with killed.connect() as conn:
        interrupted = conn.execute(sa.text("SELECT count(*) FROM userdebtor.sync_run WHERE outcome IS NULL")).scalar()
    assert interrupted >= min_interrupted, "the kills landed inside runs, not before them"

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
    clean.dispose()
    return killed


@pytest.mark.slow
def test_killed_runs_then_a_rerun_end_like_one_clean_run(pg_urls, tmp_path, monkeypatch):
    """Kills at several moments after the start: extract, conversions, planning and the loads."""
    moments = [_after(seconds) for seconds in (0.0, 0.4, 0.8, 1.5, 2.5, 4.0)]
    killed = _killed_runs_end_like_one_clean_run(pg_urls, tmp_path, monkeypatch, moments, min_interrupted=3)
    killed.dispose()


@pytest.mark.slow
def test_a3_e1_kills_inside_the_reordered_stages_and_delivery_end_like_one_clean_run(pg_urls, tmp_path, monkeypatch):
    """Kills as the loads start, while new pairs get their field changes, once the order history is planned
    (after every load it follows), and inside delivery; the mail folder then holds each email exactly once."""
    moments = [_plan_verdict_taken, _new_links_being_synced, _order_history_planned, _delivering]
    killed = _killed_runs_end_like_one_clean_run(pg_urls, tmp_path, monkeypatch, moments, min_interrupted=3)
    mail = tmp_path / "home-killed" / "mail"
    files = [path for sub in ("new", "cur") for path in (mail / sub).iterdir()]
    message_ids = Counter(
        message_from_bytes(path.read_bytes(), policy=policy.default)["Message-ID"] for path in files
    )
    sent = _scalar(killed, "SELECT count(*) FROM web.email_outbox WHERE status = 'sent'")
    assert [m for m, n in message_ids.items() if n > 1] == [], "an email was delivered twice"
    assert len(files) == sent, "every sent email is in the mail folder once, and only those"
    killed.dispose()
