"""Render the integration's emails from Jinja2 templates (rule E1).

Each email is three files in a templates folder: `<name>.subject.txt`, `<name>.txt` and `<name>.html`.
The operator's `email.templates_dir` is searched first, file by file, so an operator can replace one file
(or the shared `_base.html` layout) and keep the rest of the built-in set.

Templates are edited by people without a shell, so every template renders in Jinja2's immutable sandbox: it
sees the values the pipeline passes and nothing of Python's internals (`cycler.__init__.__globals__` is a
SecurityError, never a call). `template_problems` checks a folder before a run writes anything (RULES A4).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

BUILTIN_TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# A subject is one header line; anything longer than this is cut so a long summary cannot break delivery.
_MAX_SUBJECT = 250
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass(frozen=True)
class TemplateSpec:
    """The variables a template needs (`required`) and those it can do without (`optional`, default None)."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()


# Every template may also use `store_name` and `site_url` (optional) and `subject` (the rendered subject).
_COMMON_OPTIONAL = ("store_name", "site_url")

TEMPLATES: dict[str, TemplateSpec] = {
    # U2/M1: a user made for an ERP account; `link` is the one-time set-password link.
    "user_debtor_new_user": TemplateSpec(
        required=("link",),
        optional=("name", "email_address", "account_code", "account_name", "expires_hours"),
    ),
    # Warnings to `user_debtor.warning_emails_to`; `details` is the record, field by field.
    "user_debtor_warning": TemplateSpec(
        required=("rule", "kind", "subject_key", "summary", "details", "action"),
        optional=("rule_title", "run_id"),
    ),
    # I1: an approved instant-account registration; `link` confirms the email address.
    "instant_account_verify": TemplateSpec(
        required=("link",),
        optional=("name", "email_address", "accounts", "expires_hours"),
    ),
    # A1: an existing login whose email matches ERP accounts; `link` proves the address before they are linked.
    "account_link_verify": TemplateSpec(
        required=("link",),
        optional=("name", "email_address", "accounts", "expires_hours"),
    ),
    # I2: a login after `reverify_after_days`; `link` confirms the email address again.
    "instant_account_reverify": TemplateSpec(
        required=("link",),
        optional=("name", "email_address", "days", "expires_hours"),
    ),
    # U3: told to the new user while their login waits for approval.
    "registration_pending_approval": TemplateSpec(
        required=(),
        optional=("name", "email_address", "account_code", "account_name"),
    ),
    # To the warning address when a sync run fails.
    "sync_run_failed": TemplateSpec(
        required=("run_id", "error"),
        optional=("step", "started_at", "ui_url", "details", "held", "checks", "advice"),
    ),
}


class EmailTemplateError(ValueError):
    """A template that does not exist, does not parse, or needs a variable the caller did not give."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str | None


# The most a template may build with `*` (characters or items) and the largest exponent of `**`: an email
# needs far less, and a template must not be able to exhaust the pipeline's memory.
_MAX_PRODUCT = 100_000
_MAX_EXPONENT = 64


class _EmailSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with `*` and `**` bounded, as `range` already is (jinja2.sandbox.MAX_RANGE)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError(f"an exponent above {_MAX_EXPONENT} is not allowed in an email template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int) and len(seq) * times > _MAX_PRODUCT:
                    raise SecurityError(f"'*' would build more than {_MAX_PRODUCT:,} characters or items")
        return super().call_binop(context, operator, left, right)


# A folder's files, each as (path in the folder, size, time of its last change in nanoseconds).
FolderStamp = tuple[tuple[str, int, int], ...]


@lru_cache(maxsize=16)
def _environment(templates_dir: str | None, stamp: FolderStamp = ()) -> ImmutableSandboxedEnvironment:
    """One environment for a folder as `stamp` found it (its files' names, sizes and change times): an edited folder
    gets a new one, so each template is read from disk once, not looked at again for every email rendered (a
    million welcome emails checked `_base.html`'s time two million times)."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(str(BUILTIN_TEMPLATES_DIR)))
    # E1: the sandbox refuses internals (`__class__`, `__globals__`, ...) and, immutable, any change of a
    # value the pipeline passes (`list.append`, `dict.update`).
    return _EmailSandbox(
        loader=jinja2.ChoiceLoader(loaders),
        # A misspelt or missing variable is an error, never a blank in an email sent to a customer.
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def _stamp(folder: Path) -> FolderStamp:
    """The operator folder's files as they are now: read once for each batch of emails, not once an email."""
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            info = path.stat()
            found.append((str(path.relative_to(folder)), info.st_size, info.st_mtime_ns))
    return tuple(found)


def environment(templates_dir: str | Path | None = None) -> ImmutableSandboxedEnvironment:
    """The Jinja2 environment for an operator folder (or None for the built-in templates only), as the folder is
    now. The built-in templates are part of the installed package and do not change while it runs."""
    if templates_dir is None or str(templates_dir) == "":
        return _environment(None)
    folder = Path(templates_dir).expanduser()
    if not folder.is_dir():
        raise EmailTemplateError(f"email.templates_dir {str(folder)!r} is not a folder")
    folder = folder.resolve()
    return _environment(str(folder), _stamp(folder))


def available_templates(templates_dir: str | Path | None = None) -> list[str]:
    """Names of the emails that can be rendered: built-in ones and any the operator's folder adds."""
    names = {
        name[: -len(".subject.txt")]
        for name in environment(templates_dir).list_templates()
        if name.endswith(".subject.txt") and "/" not in name
    }
    return sorted(names)


def _load(env: jinja2.Environment, filename: str, *, required: bool) -> jinja2.Template | None:
    try:
        return env.get_template(filename)
    except jinja2.TemplateNotFound:
        if required:
            raise
        return None
    except jinja2.TemplateSyntaxError as exc:
        raise EmailTemplateError(f"email template {filename} line {exc.lineno}: {exc.message}") from exc


def _render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    try:
        return template.render(context)
    except SecurityError as exc:
        raise EmailTemplateError(
            f"email template {template.name} is refused by the sandbox: {exc} (a template may use only the "
            "values passed to it)"
        ) from exc
    except jinja2.UndefinedError as exc:
        raise EmailTemplateError(f"email template {template.name}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise EmailTemplateError(f"email template {template.name}: {exc}") from exc
    except OverflowError as exc:  # the sandbox's bound on range()
        raise EmailTemplateError(f"email template {template.name}: {exc}") from exc


class EmailRenderer:
    """One email template compiled once, rendered per row: a batch of emails pays the compile a single time."""

    def __init__(self, template: str, templates_dir: str | Path | None = None) -> None:
        if not isinstance(template, str) or not _NAME.fullmatch(template):
            raise EmailTemplateError(f"unknown email template {template!r}")
        env = environment(templates_dir)
        try:
            subject_tpl = _load(env, f"{template}.subject.txt", required=True)
            text_tpl = _load(env, f"{template}.txt", required=True)
        except jinja2.TemplateNotFound as exc:
            known = ", ".join(available_templates(templates_dir))
            raise EmailTemplateError(
                f"unknown email template {template!r}: {exc.name} not found (known templates: {known})"
            ) from None
        assert subject_tpl is not None and text_tpl is not None
        self.template = template
        self._subject, self._text = subject_tpl, text_tpl
        self._html = _load(env, f"{template}.html", required=False)
        self._spec = TEMPLATES.get(template)
        # Optional variables default to None so templates can test them with a plain `{% if %}`.
        self._defaults: dict[str, Any] = dict.fromkeys(_COMMON_OPTIONAL)
        if self._spec is not None:
            self._defaults.update(dict.fromkeys(self._spec.optional))

    def render(self, context: Mapping[str, Any]) -> RenderedEmail:
        """Subject, text and HTML of one email; the HTML part is None when no `.html` file exists."""
        if self._spec is not None:
            missing = [name for name in self._spec.required if name not in context]
            if missing:
                raise EmailTemplateError(f"email template {self.template!r} needs {', '.join(missing)}")
        values = {**self._defaults, **context}
        # A subject is a header: one line, whitespace collapsed, so nothing in it can start another header.
        subject = " ".join(_render(self._subject, values).split())[:_MAX_SUBJECT]
        if not subject:
            raise EmailTemplateError(f"email template {self.template!r} renders an empty subject")
        values.setdefault("subject", subject)
        body_text = _render(self._text, values).strip() + "\n"
        body_html = _render(self._html, values) if self._html is not None else None
        return RenderedEmail(subject=subject, body_text=body_text, body_html=body_html)


def render_email(
    template: str, context: Mapping[str, Any], templates_dir: str | Path | None = None
) -> RenderedEmail:
    """Render subject, text and HTML of one email; the HTML part is None when no `.html` file exists."""
    return EmailRenderer(template, templates_dir).render(context)


# ------------------------------------------------------------------------------------- settings check

# Representative values for checking a template before a run: every variable a template may use.
_SAMPLE_VALUES: dict[str, Any] = {
    "link": "https://shop.example.com/account/verify?token=sample",
    "name": "Sample Person",
    "email_address": "sample@example.com",
    "account_code": "C10001",
    "account_name": "Sample Account",
    "accounts": ["C10001", "C10002"],
    "expires_hours": 48,
    "days": 90,
    "details": {"code": "C10001", "email": "sample@example.com"},
    "store_name": "Sample Store",
    "site_url": "https://shop.example.com",
    "run_id": "00000000-0000-0000-0000-000000000000",
    "started_at": "2026-01-01 00:00:00 UTC",
    "ui_url": "http://localhost:3000/runs/00000000",
}


def _sample_context(template: str) -> dict[str, Any]:
    spec = TEMPLATES.get(template, TemplateSpec(required=()))
    names = (*spec.required, *spec.optional, *_COMMON_OPTIONAL)
    return {name: _SAMPLE_VALUES.get(name, f"sample {name}") for name in names}


def _reaches_internals(source: str, env: jinja2.Environment) -> str | None:
    """The first `x._private` or `x["__dunder__"]` in a template, wherever it stands (taken branch or not)."""
    tree = env.parse(source)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            return f"line {node.lineno} uses {name!r}"
    return None


def template_problems(templates_dir: str | Path | None) -> list[str]:
    """Why the operator's templates cannot be used, one line per problem naming the file; [] when none.

    Every file in the folder must compile in the sandbox and name nothing private (a `_` attribute); then
    every email is rendered with sample values, so that what the sandbox refuses at render time shows now,
    before a run writes anything, rather than in the middle of one.
    """
    if templates_dir is None or str(templates_dir) == "":
        return []
    try:
        env = environment(templates_dir)
    except EmailTemplateError as exc:
        return [str(exc)]
    folder = Path(templates_dir).expanduser().resolve()
    problems: list[str] = []
    for filename in jinja2.FileSystemLoader(str(folder)).list_templates():
        try:
            source = (folder / filename).read_text(encoding="utf-8")
            hint = _reaches_internals(source, env)
        except UnicodeDecodeError:
            problems.append(f"email template {filename}: not UTF-8 text")
            continue
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"email template {filename} line {exc.lineno}: {exc.message}")
            continue
        if hint:
            problems.append(
                f"email template {filename} is refused by the sandbox: {hint}, a private name (a template may "
                "use only the values passed to it)"
            )
    if problems:
        return problems
    for template in available_templates(folder):
        try:
            render_email(template, _sample_context(template), folder)
        except EmailTemplateError as exc:
            problems.append(str(exc))
    return problems
