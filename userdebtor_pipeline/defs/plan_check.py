"""The blocking check over a plan, as one building block: a check is a few declarative lines.

    planned_orders_are_complete = plan_check(
        asset=order_history_plan, name="planned_orders_are_complete", rule="O1", description="...",
        plans=[CheckedPlan("planned_orders", "orders to add or update", query, expectations, params)])

The block reads the settings (a domain switched off passes, saying so), judges each plan in PostgreSQL with exact
counts (defs/expectations.py), and returns the check result with a readable summary, the expectations' verdicts
and the first failing rows in its metadata. A failure also writes the report a person acts on, with Great
Expectations Data Docs of the failing rows and a sample of the passing ones (operations/data_docs.py).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from userdebtor_pipeline.defs.common import markdown_table, plain
from userdebtor_pipeline.defs.expectations import Expect, PlanVerdict, judge_plan
from userdebtor_pipeline.defs.resources import SyncSettings, WebDatabase
from userdebtor_pipeline.settings import Settings

FAILING_ROWS_SHOWN = 20


def _no_params(_config: Settings) -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True)
class CheckedPlan:
    """One plan a check reads: its rows (a SELECT binding :run_id and `params`) and what each must meet."""

    name: str
    what: str  # the rows in words: "orders to add or update"
    query: str
    expectations: Callable[[Settings], Sequence[Expect]]
    params: Callable[[Settings], Mapping[str, Any]] = _no_params
    order_by: tuple[str, ...] = field(default_factory=tuple)

    def judge(self, conn: Any, config: Settings, run_id: str) -> PlanVerdict:
        params = {"run_id": run_id, **self.params(config)}
        return judge_plan(conn, self.query, self.expectations(config), params, order_by=self.order_by)


def _sentence(plan: CheckedPlan, verdict: PlanVerdict, expectations: int) -> str:
    if verdict.passed:
        return f"All {verdict.rows} {plan.what} meet the {expectations} expectations."
    return f"{plan.what.capitalize()} fail: {verdict.summary()}."


def judge_plans(web: WebDatabase, plans: Sequence[CheckedPlan], config: Settings,
                run_id: str) -> dict[str, PlanVerdict]:
    with web.engine.connect() as conn:
        return {plan.name: plan.judge(conn, config, run_id) for plan in plans}


def failing_rows(plans: Sequence[CheckedPlan], verdicts: Mapping[str, PlanVerdict]) -> list[dict[str, Any]]:
    """The failing rows kept of every plan; with more than one plan each row says which."""
    if len(plans) == 1:
        return verdicts[plans[0].name].failing_rows
    return [row | {"plan": plan.name} for plan in plans for row in verdicts[plan.name].failing_rows]


def plans_result(plans: Sequence[CheckedPlan], verdicts: Mapping[str, PlanVerdict], config: Settings,
                 **extra: Any) -> dg.AssetCheckResult:
    """The check result of judged plans: summary, counts, the expectations' verdicts, the first failing rows."""
    summary = " ".join(_sentence(p, verdicts[p.name], len(p.expectations(config))) for p in plans)
    shown = "\n\n".join(
        f"**{p.name}**\n\n{markdown_table(verdicts[p.name].failing_rows, limit=FAILING_ROWS_SHOWN)}"
        for p in plans if not verdicts[p.name].passed)
    return dg.AssetCheckResult(
        passed=all(v.passed for v in verdicts.values()),
        metadata={
            "summary": summary,
            "rows_checked": dg.MetadataValue.int(sum(v.rows for v in verdicts.values())),
            "rows_failing": dg.MetadataValue.int(sum(v.failing_total for v in verdicts.values())),
            "failing_expectations": dg.MetadataValue.int(sum(len(v.failures) for v in verdicts.values())),
            "expectations": dg.MetadataValue.md("\n\n".join(
                f"**{p.name}**: {verdicts[p.name].markdown()}" for p in plans)),
            "failing_rows": dg.MetadataValue.md(shown or "_none_"),
            **extra,
        },
    )


def plan_check(*, asset: Any, name: str, rule: str, description: str, plans: Sequence[CheckedPlan],
               enabled: Callable[[Settings], bool] | None = None, blocking: bool = True,
               metadata: Callable[[Settings], Mapping[str, Any]] | None = None) -> dg.AssetChecksDefinition:
    """A check of `asset` that judges `plans`; `blocking` holds the asset's loads back when it fails."""

    @dg.asset_check(asset=asset, name=name, blocking=blocking, description=f"{rule}: {description}")
    def _check(context: dg.AssetCheckExecutionContext, web: WebDatabase,
               settings: SyncSettings) -> dg.AssetCheckResult:
        config = settings.get()
        if enabled is not None and not enabled(config):
            return dg.AssetCheckResult(passed=True, metadata={"summary": f"{rule} is switched off", "enabled": False})
        verdicts = judge_plans(web, plans, config, context.run.run_id)
        result = plans_result(plans, verdicts, config, **(metadata(config) if metadata else {}))
        return report_plans_if_failed(context, result, plans, verdicts, config)

    return _check


def report_plans_if_failed(context: dg.AssetCheckExecutionContext, result: dg.AssetCheckResult,
                           plans: Sequence[CheckedPlan], verdicts: Mapping[str, PlanVerdict], config: Settings,
                           extra_failing: Sequence[Mapping[str, Any]] = ()) -> dg.AssetCheckResult:
    """The report of a failed check over plans, with Data Docs of the first failed plan's rows."""
    if result.passed:
        return result
    failed = next((p for p in plans if not verdicts[p.name].passed), None)
    frame, expectations = None, None
    if failed is not None:
        import pandas as pd

        verdict = verdicts[failed.name]
        frame = pd.DataFrame(verdict.failing_rows + verdict.passing_sample)
        expectations = [e.gx() for e in failed.expectations(config)]
    rows = [*failing_rows(plans, verdicts), *extra_failing]
    total = sum(v.failing_total for v in verdicts.values()) + len(extra_failing)
    return report_if_failed(context, result, frame=frame, expectations=expectations, failing_rows=rows,
                            failing_total=total)


def report_if_failed(
    context: dg.AssetCheckExecutionContext,
    result: dg.AssetCheckResult,
    *,
    frame: Any = None,
    expectations: Sequence[Any] | None = None,
    failing_rows: Any = None,
    failing_total: int | None = None,
) -> dg.AssetCheckResult:
    """A failed check links a readable report (and GX Data Docs where it validated a frame) in its metadata.

    `failing_rows` are the records behind the failure (the first ones when `failing_total` counts them all).
    """
    if result.passed:
        return result
    from userdebtor_pipeline.operations.data_docs import check_report_metadata, write_check_report

    check = context.check_specs[0]
    path = write_check_report(
        context.run.run_id,
        check.name,
        summary=str(plain(result.metadata.get("summary", ""))),
        failing_rows=failing_rows,
        failing_total=failing_total,
        asset=check.asset_key.to_user_string(),
        frame=frame,
        expectations=expectations,
    )
    return dg.AssetCheckResult(passed=False, metadata={**result.metadata, **check_report_metadata(path)})
