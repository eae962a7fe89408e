"""The two building blocks of the graph: a SQL plan and a load, each declared in a few lines.

`sql_plan(...)` runs one SQL file into a plan table when its rule is switched on and shows the plan in the UI:
a count per kind, the table's name and row count, a sample, the change window, the rule in the description.
`load(...)` wraps the write of a plan: the rule's switch, the dry run (the plan's counts as `would_*`, nothing
written) and the U7 hold are decided here, once, and the wrapped function only writes and says what it wrote.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userdebtor_pipeline.defs.common import ChangeWindow, Stopwatch, change_window, sample
from userdebtor_pipeline.defs.resources import ErpDatabase, RunOptions, SyncSettings, WebDatabase
from userdebtor_pipeline.defs.sql_file import SqlFile
from userdebtor_pipeline.defs.user_debtor.guard import read_guard_verdict
from userdebtor_pipeline.settings import Settings


def switched_on(config: Settings, switch: str | None) -> bool:
    """The settings switch of a rule, by its path in the settings file ('user_debtor.enabled'); none is on."""
    return switch is None or bool(attrgetter(switch)(config))


def pair_counts(conn: Connection, query: str, params: Mapping[str, Any]) -> dict[str, int]:
    """A query of (name, count) rows as a dict; a name that is NULL is left out."""
    return {str(k): int(v) for k, v in conn.execute(sa.text(query), dict(params)).all() if k is not None}


def metadata_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata as the UI shows it: whole numbers as counts, everything else as given."""
    return {k: dg.MetadataValue.int(int(v)) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in values.items()}


def plan_table_metadata(conn: Connection, table: str, run_id: str | None = None) -> dict[str, Any]:
    """`dagster/table_name` and `dagster/row_count` of a plan table (only this run's rows when it keeps a run_id)."""
    schema, _, name = table.rpartition(".")
    query = sa.select(sa.func.count()).select_from(sa.table(name, schema=schema or None))
    if run_id is not None:
        query = query.where(sa.column("run_id") == run_id)
    return {"dagster/table_name": table, "dagster/row_count": dg.MetadataValue.int(int(conn.execute(query).scalar()))}


@dataclass(frozen=True)
class PlanRun:
    """What a plan's bound values may come from."""

    run_id: str
    config: Settings
    window: ChangeWindow
    dry_run: bool


def sql_plan(
    name: str,
    *,
    rule: str,
    sql: SqlFile,
    table: str,
    counts: str,
    sample_rows: str,
    params: Callable[[PlanRun], Mapping[str, Any]],
    deps: Sequence[Any],
    switch: str | None = None,
    per_run: bool = False,
    group: str = "plan",
) -> dg.AssetsDefinition:
    """A plan asset: `sql` run with `params` (and :run_id, :since) into `table` when `switch` is on; `counts` gives
    (name, count) rows and `sample_rows` the sample, both bound like the SQL. `per_run`: the table keeps a run_id."""

    @dg.asset(name=name, group_name=group, deps=list(deps), description=rule)
    def plan(context: dg.AssetExecutionContext, web: WebDatabase, settings: SyncSettings,
             run_options: RunOptions) -> dg.MaterializeResult:
        watch = Stopwatch()
        config = settings.get()
        enabled = switched_on(config, switch)
        with web.engine.begin() as conn:
            window = change_window(conn, context.run_id, name if enabled else None)
            bound = {"run_id": context.run_id, "since": window.since}
            if enabled:
                bound |= params(PlanRun(context.run_id, config, window, run_options.dry_run))
                sql.run(conn, bound)
            found = pair_counts(conn, counts, bound)
            shown = sample(conn, sample_rows, bound)
            table_metadata = plan_table_metadata(conn, table, context.run_id if per_run else None)
        return dg.MaterializeResult(metadata={
            **metadata_of(found), **table_metadata, "enabled": enabled,
            "since_seq": dg.MetadataValue.int(window.since), "sample": dg.MetadataValue.md(shown),
            "seconds": watch.seconds,
        })

    return plan


@dataclass(frozen=True)
class LoadRun:
    """What a load writes with: the run, the settings, both databases and the run's options."""

    context: dg.AssetExecutionContext
    config: Settings
    web: WebDatabase
    erp: ErpDatabase | None
    options: RunOptions

    @property
    def run_id(self) -> str:
        return self.context.run_id


def _not_written(reason: str, **more: Any) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"written": False, "reason": reason, **metadata_of(more)})


def load(
    *,
    rule: str,
    deps: Sequence[Any],
    switch: str | None = None,
    would: Callable[[Connection, str], Mapping[str, Any]] | None = None,
    held_by_guard: bool = False,
    uses_erp: bool = False,
    when_switched_off: Callable[[LoadRun], None] | None = None,
    name: str | None = None,
    group: str = "load",
) -> Callable[[Callable[[LoadRun], Mapping[str, Any]]], dg.AssetsDefinition]:
    """A load asset around a function that writes and returns what it wrote (counts and metadata).

    Nothing is written when `switch` is off (`when_switched_off` may forget state, outside a dry run), in a dry run
    (`would(conn, run_id)` tells what would be: its counts shown as `would_*`), or when `held_by_guard` and the U7
    change guard holds this run's writes.
    """

    def build(write: Callable[[LoadRun], Mapping[str, Any]]) -> dg.AssetsDefinition:
        resources = {"web", "settings", "run_options"} | ({"erp"} if uses_erp else set())

        @dg.asset(name=name or write.__name__, group_name=group, deps=list(deps), description=rule,
                  required_resource_keys=resources)
        def written(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            watch = Stopwatch()
            res = context.resources
            run = LoadRun(context, res.settings.get(), res.web, res.erp if uses_erp else None, res.run_options)
            if not switched_on(run.config, switch):
                if when_switched_off is not None and not run.options.dry_run:
                    when_switched_off(run)
                return _not_written(f"{switch} is false", enabled=False)
            if run.options.dry_run:
                with run.web.engine.connect() as conn:
                    preview = dict(would(conn, run.run_id)) if would is not None else {}
                return _not_written("dry run", dry_run=True, seconds=watch.seconds, **{
                    f"would_{k}" if isinstance(v, int) else k: v for k, v in preview.items()})
            if held_by_guard:
                with run.web.engine.connect() as conn:
                    guard = read_guard_verdict(conn, run.run_id)
                if guard.holds:
                    return dg.MaterializeResult(metadata={"written": False, "held": True, "reason": guard.summary})
            values = write(run)
            return dg.MaterializeResult(metadata={**metadata_of(values), "dry_run": False, "seconds": watch.seconds})

        return written

    return build
