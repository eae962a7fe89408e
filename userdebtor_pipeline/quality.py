"""Great Expectations 1.x, called directly (dagster-ge pins GX below 1.0), on small frames (samples of a plan).

`validate_frame` runs a list of expectations on a pandas frame and turns the verdict into what a person
reads in the Dagster UI: which expectation, how many rows, and a sample of the failing values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


@dataclass
class FrameVerdict:
    passed: bool
    rows: int
    failures: list[dict[str, Any]]  # one per failed expectation

    def summary(self) -> str:
        if self.passed:
            return f"all expectations met on {self.rows} rows"
        parts = [
            f"{f['expectation']} on `{f['column']}`: {f['unexpected_count']} of {self.rows} rows" for f in self.failures
        ]
        return "; ".join(parts)

    def markdown(self) -> str:
        if self.passed:
            return f"All expectations met on {self.rows} rows."
        lines = ["| expectation | column | failing rows | sample of failing values |", "|---|---|---|---|"]
        for f in self.failures:
            values = ", ".join(str(v) for v in f["sample"][:10]).replace("|", "\\|")
            lines.append(f"| {f['expectation']} | {f['column']} | {f['unexpected_count']} | {values} |")
        return "\n".join(lines)


_counter = iter(range(1, 1 << 62))


def validate_frame(frame: pd.DataFrame, expectations: Sequence[Any], name: str) -> FrameVerdict:
    """Validate `frame` against GX expectation objects (e.g. gx.expectations.ExpectColumnValuesToBeUnique)."""
    if frame.empty:
        return FrameVerdict(passed=True, rows=0, failures=[])
    context = _context()
    unique = f"{name}_{next(_counter)}"
    source = context.data_sources.add_pandas(unique)
    asset = source.add_dataframe_asset(unique)
    batch = asset.add_batch_definition_whole_dataframe(unique).get_batch(batch_parameters={"dataframe": frame})
    failures = []
    for expectation in expectations:
        result = batch.validate(expectation, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})
        if not result.success:
            detail = result.result or {}
            failures.append(
                {
                    "expectation": type(expectation).__name__,
                    "column": getattr(expectation, "column", ""),
                    "unexpected_count": int(detail.get("unexpected_count") or 0),
                    "sample": list(detail.get("partial_unexpected_list") or []),
                }
            )
    context.data_sources.delete(unique)
    return FrameVerdict(passed=not failures, rows=len(frame), failures=failures)
