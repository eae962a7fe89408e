"""`userdebtor conflicts` and `userdebtor resolve`: a person settles a U4 conflict; the next sync applies it.

Resolving only records the choice (status 'resolved', winner, who and when). The plan of the next run
(sql/user_debtor/plan_field_changes.sql) reads a resolved conflict as a person's choice and writes the chosen
side's value to the other side; the load then marks the conflict 'applied'. Nothing here writes to the ERP or
to web users, so a resolve is safe while a sync runs.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userdebtor_pipeline.operations.state import OperationsError

Side = Literal["erp", "web"]
SIDES: tuple[Side, ...] = ("erp", "web")
VALUE_WIDTH = 40  # wide enough for an address line; longer values are cut with an ellipsis in the listing

_COUNT_OPEN_SQL = sa.text("SELECT count(*) FROM userdebtor.conflict WHERE status = 'open'")
_LINK_STATE_SQL = sa.text("SELECT state FROM userdebtor.user_debtor_link WHERE link_id = :id")


@dataclass(frozen=True)
class Conflict:
    conflict_id: int
    link_id: int
    user_id: int
    dr_cust_code: str
    field: str
    base_value: str | None
    web_value: str | None
    erp_value: str | None
    policy: str
    status: str  # settled (by policy) | open (held) | resolved (by a person) | applied
    winner: str | None
    detected_at: datetime
    resolved_by: str | None
    resolved_at: datetime | None
    applied_at: datetime | None


# userdebtor.conflict with the columns of Conflict: each statement below selects or returns exactly those.
_CONFLICT = sa.table("conflict", *(sa.column(f.name) for f in fields(Conflict)), schema="userdebtor")
_OPEN_SQL = (
    sa.select(_CONFLICT).where(_CONFLICT.c.status == "open")
    .order_by(_CONFLICT.c.detected_at, _CONFLICT.c.conflict_id).limit(sa.bindparam("limit"))
)
_ONE_SQL = sa.select(_CONFLICT).where(_CONFLICT.c.conflict_id == sa.bindparam("id"))
# Only an open conflict can be settled; the WHERE makes two people resolving at once harmless.
_RESOLVE_SQL = (
    sa.update(_CONFLICT)
    .where(_CONFLICT.c.conflict_id == sa.bindparam("id"), _CONFLICT.c.status == "open")
    .values(status="resolved", winner=sa.bindparam("take"), resolved_by=sa.bindparam("by"), resolved_at=sa.func.now())
    .returning(*_CONFLICT.c)
)


@dataclass(frozen=True)
class Resolution:
    conflict: Conflict
    link_state: str | None  # 'active' applies at the next sync; anything else waits for the link

    def describe(self) -> str:
        c = self.conflict
        taken, other = (c.web_value, "ERP") if c.winner == "web" else (c.erp_value, "web")
        lines = [
            f"conflict {c.conflict_id} resolved by {c.resolved_by}: {c.field} of debtor {c.dr_cust_code} / web user "
            f"{c.user_id} takes the {'web' if c.winner == 'web' else 'ERP'} value.",
            f"The next sync run writes it to the {other} (value when detected: {_quoted(taken)}) "
            "and marks the conflict applied.",
        ]
        if self.link_state != "active":
            lines.append(f"Note: the link of this pair is {self.link_state or 'gone'}; the choice is applied once "
                         "the link is active again.")
        return "\n".join(lines)


def _quoted(value: str | None) -> str:
    return "(empty)" if value is None else f'"{value}"'


def _row_to_conflict(row: sa.Row) -> Conflict:
    return Conflict(**row._mapping)


def open_conflicts(web: Engine, limit: int | None = None) -> list[Conflict]:
    """Open conflicts, oldest first."""
    with web.connect() as conn:
        rows = conn.execute(_OPEN_SQL, {"limit": limit}).all()
    return [_row_to_conflict(r) for r in rows]


def count_open_conflicts(web: Engine) -> int:
    with web.connect() as conn:
        return int(conn.execute(_COUNT_OPEN_SQL).scalar_one())


def default_resolver() -> str:
    """Who settles a conflict when --by is not given: the OS user, as an audit trail needs a name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no passwd entry and no LOGNAME/USER
        return os.environ.get("USER") or f"uid:{os.getuid()}"


def resolve_conflict(web: Engine, conflict_id: int, take: Side, by: str | None = None) -> Resolution:
    """Settle one open conflict in favour of `take`; OperationsError for an unknown or already settled one."""
    if take not in SIDES:
        raise OperationsError(f"--take must be 'erp' or 'web', not {take!r}")
    resolver = (by or "").strip() or default_resolver()
    with web.begin() as conn:
        row = conn.execute(_RESOLVE_SQL, {"id": conflict_id, "take": take, "by": resolver}).first()
        if row is None:
            existing = conn.execute(_ONE_SQL, {"id": conflict_id}).first()
            raise OperationsError(_why_not_open(conflict_id, _row_to_conflict(existing) if existing else None))
        link_state = conn.execute(_LINK_STATE_SQL, {"id": row.link_id}).scalar_one_or_none()
    return Resolution(conflict=_row_to_conflict(row), link_state=link_state)


def _why_not_open(conflict_id: int, conflict: Conflict | None) -> str:
    if conflict is None:
        return f"there is no conflict {conflict_id}; `userdebtor conflicts` lists the open ones"
    when = f"{conflict.resolved_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if conflict.resolved_at else None
    if conflict.status == "resolved":
        return (f"conflict {conflict_id} is already resolved (winner {conflict.winner}, by {conflict.resolved_by}"
                f" at {when}); the next sync applies it. Nothing was changed.")
    if conflict.status == "applied":
        return (f"conflict {conflict_id} was already resolved (winner {conflict.winner}, by {conflict.resolved_by})"
                " and applied by a sync. Nothing was changed; edit the record in the ERP or on the website instead.")
    if conflict.status == "settled":
        return (f"conflict {conflict_id} was settled by conflict_policy {conflict.policy} when it was detected "
                f"(winner {conflict.winner}); only conflicts held open can be resolved. Nothing was changed.")
    return f"conflict {conflict_id} has status {conflict.status!r} and cannot be resolved. Nothing was changed."


# --------------------------------------------------------------------------------------------- render


def _cut(value: str | None, width: int = VALUE_WIDTH) -> str:
    if value is None:
        return "(empty)"
    text = " ".join(value.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_conflicts(conflicts: Sequence[Conflict], total: int) -> str:
    if not conflicts:
        return "no open conflicts\n"
    headers = ["id", "debtor", "user", "field", "base", "web", "ERP", "detected"]
    rows = [[str(c.conflict_id), c.dr_cust_code, str(c.user_id), c.field, _cut(c.base_value), _cut(c.web_value),
             _cut(c.erp_value), f"{c.detected_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"] for c in conflicts]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [f"{total} open conflicts (U4: both sides changed a field to different values; neither side was "
             "changed)", ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    if total > len(conflicts):
        lines.append(f"... and {total - len(conflicts)} more (use --limit)")
    lines += ["", "settle one with `userdebtor resolve ID --take erp|web [--by NAME]`; the next sync applies it"]
    return "\n".join(lines) + "\n"
