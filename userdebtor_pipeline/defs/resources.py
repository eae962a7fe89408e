"""Resources: the two databases, the settings file, the options of one run, and the run lock."""


from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine

from userdebtor_pipeline.db import check_reachable, engine_for, resolve_urls
from userdebtor_pipeline.settings import Settings, load_settings


class _Database(dg.ConfigurableResource):
    """A database the pipeline reads or writes; no URL: the environment's (USERDEBTOR_<SIDE>_URL), else the
    embedded PostgreSQL."""

    url: str | None = None
    side: ClassVar[str]  # "erp" or "web": which of resolve_urls() to use
    label: ClassVar[str]  # how an error names it

    @property
    def engine(self) -> Engine:
        return engine_for(self.url or getattr(resolve_urls(), self.side))

    def check(self) -> None:
        check_reachable(self.engine, self.label)


class ErpDatabase(_Database):
    """The ERP database (schema `erp`). No URL: USERDEBTOR_ERP_URL, else the embedded PostgreSQL."""

    side: ClassVar[str] = "erp"
    label: ClassVar[str] = "ERP"


class WebDatabase(_Database):
    """The web database (schema `web`) that also holds the pipeline's own state (schema `userdebtor`)."""

    side: ClassVar[str] = "web"
    label: ClassVar[str] = "web"


class SyncSettings(dg.ConfigurableResource):
    """The settings file. No path: USERDEBTOR_CONFIG, else ./userdebtor.yaml."""

    path: str | None = None
    _settings: Settings | None = PrivateAttr(default=None)

    def get(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.path)
        return self._settings


class RunOptions(dg.ConfigurableResource):
    """What a person chose for this run (the CLI flags, or the UI launchpad)."""

    full: bool = False  # reconcile everything, not only what changed
    dry_run: bool = False  # plan and report; write nothing to erp or web
    lift_change_guard: bool = False  # a person decided that a large change (U7) is right, for this run only


# Any fixed number: only one sync may hold it at a time.
SYNC_LOCK_KEY = 7_420_002


class SyncAlreadyRunning(RuntimeError):
    pass


class SyncLock(dg.ConfigurableResource):
    """Held for the whole run on its own connection, so that two syncs never write at once."""

    web: dg.ResourceDependency[WebDatabase]

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Iterator["SyncLock"]:
        conn = self.web.engine.connect()
        try:
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY}).scalar()
            conn.commit()
            if not got:
                raise SyncAlreadyRunning(
                    "another userdebtor sync is running against this web database; this run wrote nothing. "
                    "Wait for it to finish (see `userdebtor status` or the Dagster UI), then run again."
                )
            try:
                yield self
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
                conn.commit()
        finally:
            conn.close()


def default_resources() -> dict[str, object]:
    """The resources as the UI and `userdebtor sync` use them: URLs and settings path from the environment."""
    web = WebDatabase()
    return {
        "erp": ErpDatabase(),
        "web": web,
        "settings": SyncSettings(),
        "run_options": RunOptions(),
        "sync_lock": SyncLock(web=web),
    }
