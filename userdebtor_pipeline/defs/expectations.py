"""A Great Expectations verdict on a plan frame (userdebtor_pipeline.quality) as a Dagster check result.

Shared by the domains' checks: the verdict travels with the rows behind it.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd

from userdebtor_pipeline.defs.common import markdown_table, plain
from userdebtor_pipeline.quality import FrameVerdict, validate_frame

FAILING_ROWS_SHOWN = 20


def failing_mask(frame: pd.DataFrame, verdict: FrameVerdict) -> pd.Series:
    """Which of the frame's rows are behind the failures (GX reports failing values; a person wants the rows)."""
    failing = pd.Series(False, index=frame.index)
    for failure in verdict.failures:
        column = frame[failure["column"]]
        if failure["expectation"] == "ExpectColumnValuesToNotBeNull":
            failing |= column.isna()
        else:
            failing |= column.isin([v for v in failure["sample"] if not pd.isna(v)])
    return failing


def check_frame(
    frame: pd.DataFrame,
    expectations: Sequence[Any],
    name: str,
    what: str,
    context: dg.AssetCheckExecutionContext | None = None,
    **extra: Any,
) -> dg.AssetCheckResult:
    """Validate `frame` and return the check result: readable summary, expectations, failing rows."""
    verdict = validate_frame(frame, expectations, name)
    failing = frame[failing_mask(frame, verdict)]
    shown = failing.head(FAILING_ROWS_SHOWN)
    rows = shown.astype(object).where(shown.notna(), None).to_dict("records")
    summary = (
        f"All {verdict.rows} {what} meet the {len(expectations)} expectations."
        if verdict.passed
        else f"{what.capitalize()} fail: {verdict.summary()}."
    )
    result = dg.AssetCheckResult(
        passed=verdict.passed,
        metadata={
            "summary": summary,
            "rows_checked": dg.MetadataValue.int(verdict.rows),
            "rows_failing": dg.MetadataValue.int(len(failing)),
            "expectations": dg.MetadataValue.md(verdict.markdown()),
            "failing_rows": dg.MetadataValue.md(markdown_table(rows)),
            **extra,
        },
    )
    if context is None:
        return result
    return report_if_failed(context, result, frame=frame, expectations=expectations, failing_rows=failing)


def report_if_failed(
    context: dg.AssetCheckExecutionContext,
    result: dg.AssetCheckResult,
    *,
    frame: pd.DataFrame | None = None,
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
