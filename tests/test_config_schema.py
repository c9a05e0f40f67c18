"""The ``giflab`` config schema against what it describes: the shipped YAML, the keys the code
reads, ``config show``, the README's table and the settings named in messages and docs."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import dask
import pytest
import yaml
from click.testing import CliRunner
from dask.utils import parse_bytes

from giflab_dask import config
from giflab_dask.align import AlignOptions
from giflab_dask.cli import cli
from giflab_dask.config_schema import SCHEMA, flatten
from giflab_dask.decode import Limits
from giflab_dask.sampling import SampleSpec

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "giflab_dask"
#: Functions of ``config`` whose first argument (or ``key=``) names a setting.
KEY_READERS = {"get", "choice", "shipped", "shipped_field", "parse_bytes"}
#: ``giflab.<name>`` in text that is not a setting: the YAML file, and GifLab's own modules
#: that kernels cite as references.
NOT_SETTINGS = re.compile(r"yaml$|metrics\b|config\b")


def _shipped() -> dict[str, Any]:
    return dict(flatten(config.DEFAULTS["giflab"]))


def test_yaml_and_schema_name_the_same_settings() -> None:
    shipped = set(_shipped())
    assert shipped - set(SCHEMA) == set(), "in giflab.yaml, missing from config_schema.SCHEMA"
    assert set(SCHEMA) - shipped == set(), "in config_schema.SCHEMA, missing from giflab.yaml"


@pytest.mark.parametrize("key", sorted(SCHEMA))
def test_shipped_default_has_the_schema_type(key: str) -> None:
    value, types = config.shipped(key), SCHEMA[key].types
    assert isinstance(value, types), f"giflab.{key} = {value!r} is not one of {types}"
    assert SCHEMA[key].meaning and "\n" not in SCHEMA[key].meaning


def _key_arguments(tree: ast.AST, imported: set[str]) -> list[tuple[ast.expr, ast.Call]]:
    """The argument naming a setting in every call of a ``config`` reader in ``tree``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        via_module = (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id == "config"
            and func.attr in KEY_READERS
        )
        if not (via_module or (isinstance(func, ast.Name) and func.id in imported)):
            continue
        name = func.attr if isinstance(func, ast.Attribute) else func.id  # type: ignore[union-attr]
        keywords = [k.value for k in node.keywords if k.arg == "key"]
        # parse_bytes(value, key=...) names its setting by keyword only
        positional = [] if name == "parse_bytes" else node.args[:1]
        found += [(arg, node) for arg in [*positional, *keywords]]
    return found


def _code_reads() -> list[tuple[str, ast.expr, ast.Call]]:
    reads = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "giflab_dask.config"
            for alias in node.names
            if alias.name in KEY_READERS
        }
        if path.name == "config.py":
            continue  # the readers themselves, called with their own parameters
        reads += [(path.name, arg, call) for arg, call in _key_arguments(tree, imported)]
    return reads


def _as_pattern(arg: ast.expr) -> re.Pattern[str] | None:
    """A key argument as a regex: a string is itself, an f-string matches any filling."""
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return re.compile(re.escape(arg.value))
    if isinstance(arg, ast.JoinedStr):
        parts = [
            re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z0-9.-]+" for v in arg.values
        ]
        return re.compile("".join(parts))
    return None


def test_every_key_the_code_reads_is_in_the_schema() -> None:
    reads = _code_reads()
    assert len(reads) >= 30  # the scan finds the reads (sampling, align, limits, ...)
    for where, arg, _ in reads:
        pattern = _as_pattern(arg)
        assert pattern is not None, f"{where}:{arg.lineno}: key is not a string literal"
        assert any(pattern.fullmatch(key) for key in SCHEMA), (
            f"{where}:{arg.lineno} reads giflab.{pattern.pattern}, which is not in the schema"
        )


def test_no_code_repeats_a_default() -> None:
    """Defaults live in giflab.yaml alone: no ``config.get(key, default)``."""
    for where, _, call in _code_reads():
        name = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id  # type: ignore[attr-defined]
        if name == "get":
            assert len(call.args) == 1 and not call.keywords, (
                f"{where}:{call.lineno} passes a default to config.get; giflab.yaml holds it"
            )


def test_dataclass_defaults_are_the_shipped_ones() -> None:
    assert AlignOptions() == AlignOptions.from_config()
    assert Limits() == Limits.from_config()
    assert SampleSpec(10) == SampleSpec.from_config(10)


def test_a_replaced_section_falls_back_to_shipped_defaults() -> None:
    with dask.config.set({"giflab.sampling": {"n": 12}}):
        spec = SampleSpec.from_config()
    assert spec == SampleSpec(12)
    with pytest.raises(KeyError):
        config.get("sampling.no-such-setting")


def test_config_show_lists_every_setting() -> None:
    result = CliRunner().invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = dict(flatten(yaml.safe_load(result.output)["giflab"]))
    assert set(shown) == set(SCHEMA)
    # the effective values, not the shipped ones: the test's cache root shows
    assert shown["cache-dir"] == dask.config.get("giflab.cache-dir") != config.shipped("cache-dir")


def _readme_table() -> dict[str, str]:
    """The README's configuration table: key (without ``giflab.``) -> default cell."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Configuration\n(.*?)^## ", text, re.S | re.M)
    assert section, "README has no '## Configuration' section"
    rows = re.findall(r"^\| `giflab\.([^`]+)` \| ([^|]*) \|", section.group(1), re.M)
    return dict(rows)


def test_readme_table_has_a_row_per_setting() -> None:
    """Every setting has its own row (no wildcard rows): the table is the user's reference."""
    assert sorted(_readme_table()) == sorted(SCHEMA)


def _cell_value(cell: str) -> Any:
    text = cell.strip().strip("`")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


@pytest.mark.parametrize("key", sorted(SCHEMA))
def test_readme_default_is_the_shipped_one(key: str) -> None:
    """The README's default is the shipped one: a value equal to it ("20 GB" counts as 20e9
    bytes); for null, `null` or words ("user cache dir"); for profiles, their names."""
    default, cell = config.shipped(key), _readme_table().get(key, "")
    value = _cell_value(cell)
    if default is None:
        assert value is None or (isinstance(value, str) and not value[:1].isdigit()), cell
    elif isinstance(default, dict) and default:
        assert set(cell.split("/")) == set(default), f"README names {cell!r} for giflab.{key}"
    else:
        if isinstance(value, str) and isinstance(default, int) and not isinstance(default, bool):
            value = parse_bytes(value)
        assert value == default, f"README: giflab.{key} defaults to {cell!r}; YAML: {default!r}"


def test_settings_named_in_code_and_docs_exist() -> None:
    """``giflab.<name>`` in messages, comments and docs names a setting or a section."""
    sections = {key.rsplit(".", 1)[0] for key in SCHEMA if "." in key}
    files = [*PACKAGE.rglob("*.py"), REPO / "README.md", *(REPO / "docs").glob("*.md")]
    named = re.compile(r"(?<![\w.-])giflab\.([a-z][a-z0-9-]*(?:\.[a-z][a-z0-9-]*)*)")
    unknown = {
        f"{path.name}: giflab.{name}"
        for path in files
        for name in named.findall(path.read_text(encoding="utf-8"))
        if not NOT_SETTINGS.match(name) and name not in SCHEMA and name not in sections
    }
    assert unknown == set()
