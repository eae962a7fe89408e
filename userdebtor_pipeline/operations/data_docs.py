"""Reports a person can act on when a blocking check fails: USERDEBTOR_HOME/reports/<run_id>/<check>.html.

`write_check_report` writes the report (static HTML, plus the same content as Markdown beside it) with the
check, its summary and the failing rows, and returns the HTML's path for the check's metadata
(`check_report_metadata`). When the check validated a frame with Great Expectations, pass the frame and the
expectations too: the same validation is then run in a file-based GX context under USERDEBTOR_HOME/gx and
rendered as real GX Data Docs, which the report links to. Building them costs a fraction of a second and
happens only for a failed check; if it fails, the report says so and is written all the same.

Failing rows are the records a person must fix, so the report holds them (up to MAX_ROWS); it stays on this
machine, under USERDEBTOR_HOME, never in an email.

Everything renders offline: the report carries its own style, and the GX pages, whose templates load Bootstrap
and scripts from CDNs, are rewritten to an inline stylesheet with the remote links taken out (`make_offline`).
"""

from __future__ import annotations

import html
import logging
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from userdebtor_pipeline.paths import home_dir

_log = logging.getLogger(__name__)

MAX_ROWS = 500
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_GX_SOURCE = "userdebtor_checks"

FailingRows = pd.DataFrame | Sequence[Mapping[str, Any]] | None


def _safe(name: str) -> str:
    """A file name from a run id or a check name: nothing that could climb out of the reports folder."""
    cleaned = _SAFE_NAME.sub("_", name).strip("._")
    return cleaned or "unnamed"


def reports_dir(run_id: str) -> Path:
    return home_dir() / "reports" / _safe(run_id)


def verdict_rows(verdict: Any) -> list[dict[str, Any]]:
    """The failures of a quality.FrameVerdict as rows: expectation, column, failing rows, sample values."""
    return [
        {"expectation": f["expectation"], "column": f["column"], "failing rows": f["unexpected_count"],
         "sample of failing values": ", ".join(str(v) for v in f["sample"][:20])}
        for f in getattr(verdict, "failures", [])
    ]


def _as_rows(failing_rows: FailingRows) -> list[dict[str, Any]]:
    if failing_rows is None:
        return []
    if isinstance(failing_rows, pd.DataFrame):
        return failing_rows.head(MAX_ROWS + 1).astype(object).where(failing_rows.notna(), None).to_dict("records")
    return [dict(row) for row in list(failing_rows)[: MAX_ROWS + 1]]


def _total(failing_rows: FailingRows, failing_total: int | None) -> int:
    if failing_total is not None:
        return failing_total
    if failing_rows is None:
        return 0
    return len(failing_rows)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _markdown(title: str, facts: Sequence[tuple[str, str]], rows: list[dict[str, Any]], total: int,
              gx_page: Path | None, gx_problem: str | None) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts]
    if gx_page is not None:
        lines += ["", f"Great Expectations Data Docs of this validation: {gx_page}"]
    elif gx_problem:
        lines += ["", f"Great Expectations Data Docs could not be built: {gx_problem}"]
    lines += ["", f"## Failing rows ({total})", ""]
    if not rows:
        lines.append("_none recorded_")
    else:
        shown = rows[:MAX_ROWS]
        columns = list(shown[0].keys())
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in shown:
            lines.append("| " + " | ".join(_cell(row.get(c)).replace("|", "\\|").replace("\n", " ")
                                           for c in columns) + " |")
        if total > len(shown):
            lines += ["", f"_{total - len(shown)} more rows not shown_"]
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:80em}"
    "h1{font-size:1.4em;color:#8a1c1c}table{border-collapse:collapse;margin-top:.5em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top;font-size:.9em}"
    "th{background:#f3f3f0}dt{font-weight:600;margin-top:.4em}dd{margin-left:1em}"
)


def _html(title: str, facts: Sequence[tuple[str, str]], rows: list[dict[str, Any]], total: int,
          gx_link: str | None, gx_problem: str | None) -> str:
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1><dl>"]
    parts += [f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in facts]
    parts.append("</dl>")
    if gx_link is not None:
        parts.append(f"<p><a href='{e(gx_link)}'>Great Expectations Data Docs of this validation</a></p>")
    elif gx_problem:
        parts.append(f"<p>Great Expectations Data Docs could not be built: {e(gx_problem)}</p>")
    parts.append(f"<h2>Failing rows ({total})</h2>")
    if not rows:
        parts.append("<p><em>none recorded</em></p>")
    else:
        shown = rows[:MAX_ROWS]
        columns = list(shown[0].keys())
        parts.append("<table><tr>" + "".join(f"<th>{e(str(c))}</th>" for c in columns) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in shown]
        parts.append("</table>")
        if total > len(shown):
            parts.append(f"<p><em>{total - len(shown)} more rows not shown</em></p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def _write_index(folder: Path) -> None:
    """One page per run listing its check reports, for a person who starts from the run."""
    links = "".join(f"<li><a href='{html.escape(p.name)}'>{html.escape(p.stem)}</a></li>"
                    for p in sorted(folder.glob("*.html")) if p.name != "index.html")
    title = f"Failed checks of run {folder.name}"
    (folder / "index.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><ul>{links}</ul></body></html>\n",
        encoding="utf-8")


def write_check_report(run_id: str, check_name: str, *, summary: str, failing_rows: FailingRows = None,
                       asset: str | None = None, frame: pd.DataFrame | None = None,
                       expectations: Sequence[Any] | None = None, failing_total: int | None = None) -> Path:
    """Write the report of one failed check and return the path of its HTML page.

    `failing_rows` are the offending records (a DataFrame or a list of mappings; `verdict_rows(verdict)` turns
    a quality.FrameVerdict into rows); `failing_total` is their full count when only the first ones are given.
    With `frame` and `expectations` (GX expectation objects), real GX Data Docs are built too and linked.
    """
    folder = reports_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = _safe(check_name)
    rows, total = _as_rows(failing_rows), _total(failing_rows, failing_total)
    gx_page: Path | None = None
    gx_problem: str | None = None
    if frame is not None and expectations:
        try:
            gx_page = build_gx_data_docs(run_id, check_name, frame, expectations)
        except Exception as exc:  # the report matters more than its GX companion
            gx_problem = f"{type(exc).__name__}: {exc}"
            _log.warning("GX Data Docs of check %s not built: %s", check_name, gx_problem)
    title = f"Check {check_name} failed"
    facts = [("check", check_name), ("asset", asset or "-"), ("run", run_id), ("summary", summary),
             ("written", f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC")]
    gx_link = os.path.relpath(gx_page, folder) if gx_page is not None else None
    (folder / f"{name}.md").write_text(_markdown(title, facts, rows, total, gx_page, gx_problem), encoding="utf-8")
    page = folder / f"{name}.html"
    page.write_text(_html(title, facts, rows, total, gx_link, gx_problem), encoding="utf-8")
    _write_index(folder)
    return page


def check_report_metadata(path: Path) -> dict[str, dg.MetadataValue]:
    """Metadata for the failing AssetCheckResult: the report's path (the UI shows it), and a file:// link."""
    return {"report": dg.MetadataValue.path(str(path)), "report_url": dg.MetadataValue.url(path.as_uri())}


# ------------------------------------------------------------------------------------ GX Data Docs


@cache
def _gx_context(root: str) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=root)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def build_gx_data_docs(run_id: str, check_name: str, frame: pd.DataFrame, expectations: Sequence[Any]) -> Path:
    """Validate `frame` in the file-based GX context under USERDEBTOR_HOME/gx and build its Data Docs.

    One suite and one validation definition per check (updated to the expectations given), one stored result
    per Dagster run (the GX run name). Returns the HTML page of this validation.
    """
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    root = home_dir()
    context = _gx_context(str(root))
    name = _safe(check_name)
    try:
        source = context.data_sources.get(_GX_SOURCE)
    except (KeyError, ValueError):
        source = context.data_sources.add_pandas(_GX_SOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        batch = asset.get_batch_definition("whole_frame")
    except (KeyError, ValueError):
        batch = asset.add_batch_definition_whole_dataframe("whole_frame")
    # Copies: adding an expectation to a suite gives it an id, and the caller's objects stay as they were.
    suite = context.suites.add_or_update(gx.ExpectationSuite(
        name=name, expectations=[e.copy(update={"id": None}) for e in expectations]))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=suite))
    gx_run = RunIdentifier(run_name=_safe(run_id))
    result = validation.run(batch_parameters={"dataframe": frame}, run_id=gx_run,
                            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20})
    # Only this validation's page (and the index): rebuilding every stored result would grow with history.
    context.build_data_docs(resource_identifiers=[ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=name), run_id=gx_run,
        batch_identifier=result.batch_id)])
    site = root / "gx" / "uncommitted" / "data_docs" / "local_site"
    pages = sorted((site / "validations" / name / _safe(run_id)).glob("*/*.html"), key=lambda p: p.stat().st_mtime)
    page = pages[-1] if pages else site / "index.html"
    for written in (page, site / "index.html"):
        if written.is_file():
            make_offline(written)
    return page


# Remote stylesheets and scripts of GX's page templates (Bootstrap, jQuery, Vega from CDNs).
_REMOTE_TAGS = re.compile(
    r"<link\b[^>]*\bhref=[\"']https?://[^>]*>|<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)
# Enough of Bootstrap's layout for GX's pages to read well without a network; collapsed parts stay open.
_OFFLINE_GX_STYLE = (
    "body{font-family:system-ui,sans-serif;color:#222;margin:0;padding:1em;line-height:1.4}"
    ".container-fluid,.container{width:100%;box-sizing:border-box}.row{display:flex;flex-wrap:wrap;gap:1em}"
    "[class*=col-]{flex:1 1 20em;min-width:0}.card{border:1px solid #ddd;border-radius:4px;margin-bottom:1em}"
    ".card-header{background:#f3f3f0;padding:.5em 1em;border-bottom:1px solid #ddd}.card-body{padding:.5em 1em}"
    "table,.table{border-collapse:collapse;width:100%;margin:.5em 0}th,td{border:1px solid #ddd;padding:4px 8px;"
    "text-align:left;vertical-align:top}th{background:#f3f3f0}.badge{display:inline-block;padding:.1em .5em;"
    "border-radius:3px;background:#eee;font-size:.85em}.badge-danger,.text-danger{color:#8a1c1c}"
    ".badge-success,.text-success{color:#1f5d4c}.navbar,.ge-footer,.d-none{display:none}"
    "img{max-width:100%;height:auto}.sticky{position:static}code,pre{background:#f6f6f4;padding:0 .2em}"
)
_OFFLINE_MARK = "<!-- userdebtor: offline -->"


def make_offline(page: Path) -> None:
    """Rewrite a GX Data Docs page to render without a network: remote links out, an inline style in."""
    text = page.read_text(encoding="utf-8")
    if _OFFLINE_MARK in text:
        return
    text = _REMOTE_TAGS.sub("", text)
    style = f"{_OFFLINE_MARK}<style>{_OFFLINE_GX_STYLE}</style>"
    text = text.replace("</head>", style + "</head>", 1) if "</head>" in text else style + text
    page.write_text(text, encoding="utf-8")
