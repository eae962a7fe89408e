"""Reading the settings file: where it is, its bytes within bounds, its YAML parsed strictly (RULES A4).

A key given twice, a file over 256 KiB or aliases that expand past 100,000 values are refused as SettingsErrors
before any value is validated.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from userdebtor_pipeline.settings_errors import SettingsError

CONFIG_ENV = "USERDEBTOR_CONFIG"
DEFAULT_CONFIG_PATH = "userdebtor.yaml"

class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice, which plain YAML would silently overwrite."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same section", mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

# A settings file is a few kilobytes; these bounds make a hostile one fail in milliseconds (A4).
MAX_SETTINGS_BYTES = 256 * 1024
# Values the file stands for once every alias (`*name`) is expanded: a "billion laughs" file of 400 bytes
# stands for billions of values that validation would walk one by one.
MAX_SETTINGS_VALUES = 100_000


def _expanded_size(root: yaml.Node) -> int:
    """How many values `root` stands for with every alias expanded, counted without expanding anything.

    Aliases share nodes, so each node's size is computed once; the count stops as soon as it passes the
    bound. A node that contains itself (`&a [*a]`) is refused outright.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to the value that contains it", node.start_mark
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > MAX_SETTINGS_VALUES:
                break
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _read_yaml(text: str) -> Any:
    """Parse the settings text, refusing a file whose aliases expand past MAX_SETTINGS_VALUES values."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root) > MAX_SETTINGS_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the file's aliases (*name) expand to more than {MAX_SETTINGS_VALUES:,} values; "
                "a settings file needs a few hundred",
                root.start_mark,
            )
        return loader.construct_document(root)
    finally:
        loader.dispose()


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The settings file to use: `path`, else $USERDEBTOR_CONFIG, else ./userdebtor.yaml."""
    if path is None:
        path = os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    return Path(path)



def read_settings_file(path: str | os.PathLike[str] | None = None) -> Any:
    """The settings file's YAML as plain data, read within bounds (size, aliases); SettingsError otherwise."""
    file = config_path(path)
    source = str(file)
    try:
        # Read one byte past the bound rather than trusting the size a FIFO or device would report.
        with file.open("rb") as handle:
            raw = handle.read(MAX_SETTINGS_BYTES + 1)
        if len(raw) > MAX_SETTINGS_BYTES:
            raise SettingsError(f"the file is larger than {MAX_SETTINGS_BYTES:,} bytes; a settings file is a few "
                                "kilobytes", source)
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise SettingsError(
            f"settings file not found: {file.resolve()} (set {CONFIG_ENV} or create it; "
            "userdebtor.example.yaml shows every key)",
            source,
        ) from None
    except IsADirectoryError:
        raise SettingsError(f"{file.resolve()} is a directory, not a settings file", source) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})", source
        ) from None
    except OSError as exc:
        raise SettingsError(f"cannot read {file.resolve()}: {exc.strerror or exc}", source) from None
    try:
        return _read_yaml(text)
    except yaml.YAMLError as exc:
        raise SettingsError(_yaml_problem(exc), source) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    # A repeated key parses fine but is refused by our loader: not a syntax error as such.
    what = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
    if mark is not None:
        return f"{what} at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return f"{what}: {problem}"
