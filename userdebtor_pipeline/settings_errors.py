"""SettingsError: every problem of a settings file, one a line, under its dotted key (`email.smtp_port: ...`)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from userdebtor_pipeline.settings_values import SECRET_KEYS, show_value


class SettingsError(ValueError):
    """Settings that cannot be used; the message lists every problem as `<dotted.key>: <what is wrong>`."""

    def __init__(self, problems: list[str] | str, source: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        # One problem a line, always: easy to read and to grep, whatever the count.
        lines = [f"invalid settings{where}:"]
        for problem in self.problems:
            first, *rest = problem.splitlines() or [""]
            lines.append(f"  {first}")
            lines.extend(f"    {line}" for line in rest)
        super().__init__("\n".join(lines))

    @classmethod
    def from_validation_error(
        cls, error: ValidationError, root: type[BaseModel], source: str | None = None
    ) -> SettingsError:
        """The problems pydantic found validating `root` (the whole file's model), in the file's words."""
        return cls([_describe(item, root) for item in error.errors(include_url=False)], source)


_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _dotted(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int) and key:  # a list index; at the top level an int is a (bad) key
            key += f"[{part}]"
        else:
            key += f".{part}" if key else str(part)
    return key or "(top level)"


def _model_at(loc: tuple[int | str, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The settings model that holds the key at `loc`, for listing the keys it does accept."""
    model = root
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(item: Mapping[str, Any], root: type[BaseModel]) -> str:
    loc = tuple(item.get("loc", ()))
    key = _dotted(loc)
    kind = item.get("type", "")
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1], root)
        allowed = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{key}: unknown key{hint}; allowed keys here: {', '.join(allowed)}"
    if kind == "value_error":
        # Our own checks: the text after pydantic's "Value error, " prefix is the whole story.
        return f"{key}: {item.get('ctx', {}).get('error', item.get('msg'))}"
    message = item.get("msg", "invalid value")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        # Pydantic would name our class; the user wrote YAML, so say it in YAML terms.
        message = "must be a section of keys (a mapping)"
    if kind.endswith("_type") or kind in ("literal_error", *_RANGE_ERRORS):
        if not any(part in SECRET_KEYS for part in loc):
            message = f"{message} (got {show_value(item.get('input'))})"
    return f"{key}: {message}"
