"""The databases an operator command needs, checked once, with a message a person can act on."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from userdebtor_pipeline.db import DatabaseError, check_reachable, engine_for, resolve_urls
from userdebtor_pipeline.schema import state_is_ready


class OperationsError(RuntimeError):
    """The command cannot do what was asked (unreachable database, missing state, unknown record): exit 2."""


def web_database() -> Engine:
    """The web database with the pipeline's state schema in it; OperationsError when either is missing."""
    try:
        web = engine_for(resolve_urls().web)
        check_reachable(web, "web")
    except DatabaseError as exc:
        raise OperationsError(str(exc)) from None
    if not state_is_ready(web):
        raise OperationsError("the pipeline's state schema (userdebtor) is missing from the web database: "
                              "run `userdebtor init` first")
    return web


def erp_database() -> tuple[Engine | None, str | None]:
    """The ERP database, or None and the reason it cannot be reached (status still reports the web side)."""
    try:
        erp = engine_for(resolve_urls().erp)
        check_reachable(erp, "ERP")
    except DatabaseError as exc:
        return None, str(exc)
    return erp, None
