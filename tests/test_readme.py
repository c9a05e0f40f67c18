"""The README's Python examples run as written, against demo data, and its command lines parse
against the real command line, so the README cannot drift."""

from __future__ import annotations

import re
import shlex
import shutil
import tomllib
from pathlib import Path

import click
import pytest

from giflab_dask import metrics
from giflab_dask.cli import cli
from giflab_dask.demo import write_demo_data

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
#: Markdown files whose bash blocks' giflab-dask command lines are checked (docs/ is not in
#: the sdist, whose tests check the README alone).
DOCS = [README, *(doc for doc in [REPO / "docs/clusters.md"] if doc.exists())]
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)
#: Blocks that need a real cluster deployment, skipped by name (and counted, so no other
#: block is skipped silently).
CLUSTER_ONLY = {"from dask_jobqueue import SLURMCluster": "needs dask-jobqueue and a SLURM cluster"}


def test_readme_has_the_examples() -> None:
    assert len(BLOCKS) >= 2
    skipped = [b for b in BLOCKS if any(marker in b for marker in CLUSTER_ONLY)]
    assert len(skipped) == len(CLUSTER_ONLY)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(
    block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for marker, why in CLUSTER_ONLY.items():
        if marker in block:
            pytest.skip(f"cluster-only README example: {why}")
    demo = tmp_path / "demo"
    write_demo_data(demo, n_originals=2, n_frames=12)
    shutil.copyfile(demo / "originals/demo-01.gif", tmp_path / "original.gif")
    shutil.copyfile(demo / "variants/colors-32/demo-01.gif", tmp_path / "compressed.gif")
    monkeypatch.chdir(tmp_path)
    # the examples register metrics: keep them out of the registry other tests see
    monkeypatch.setattr(metrics, "_REGISTRY", dict(metrics._REGISTRY))
    for name in ("mean_abs",):
        metrics._REGISTRY.pop(name, None)
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(block, f"{README}:python block", "exec"), namespace)


# --- command lines -------------------------------------------------------------------------
# Running the README's setup commands takes minutes (installs, a batch), too slow for every
# test run; parsing each giflab-dask command line with the CLI's own click parser catches the
# drift that matters (a renamed command or option, a removed choice) in milliseconds.

_SEPARATORS = {"&&", "||", ";", "|", "&"}


def _command_lines(text: str) -> list[list[str]]:
    """The giflab-dask command lines (arguments after the program) in ``text``'s bash blocks."""
    found = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            words: list[str] = []
            for token in [*lexer, ";"]:
                if token not in _SEPARATORS:
                    words.append(token)
                    continue
                while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                    words.pop(0)  # VAR=value before the program
                if words[:1] == ["giflab-dask"]:
                    found.append(words[1:])
                elif words[:3] == ["python", "-m", "giflab_dask"]:
                    found.append(words[3:])
                words = []
    return found


def check_command_line(args: list[str]) -> click.Command:
    """Parse ``giflab-dask ARGS`` with click's own checks (each subcommand and option exists,
    values convert: choices, ranges, paths; nothing missing or left over) without running the
    commands (only the parameters' validating callbacks run). Returns the command reached;
    raises click.UsageError."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="giflab-dask")
    while isinstance(command, click.Group):
        _, rest, _ = command.make_parser(ctx).parse_args(args=list(args))  # [name, *its args]
        command.parse_args(ctx, list(args))  # the group's own options
        if not rest:
            raise click.UsageError("missing a command", ctx=ctx)
        name, *args = rest
        sub = command.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no such command {name!r}", ctx=ctx)
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    command.parse_args(ctx, list(args))
    return command


COMMAND_LINES = [
    (doc, args) for doc in DOCS for args in _command_lines(doc.read_text(encoding="utf-8"))
]


def test_readme_has_the_command_lines() -> None:
    readme = [args for doc, args in COMMAND_LINES if doc == README]
    # the tour's three commands at least (extraction did not silently find nothing)
    used = {args[0] for args in readme if args}
    assert {"demo-data", "batch", "report"} <= used, used
    assert any(args[:1] == ["--cache-dir"] for args in readme)  # the continued cluster line


@pytest.mark.parametrize(
    ("doc", "args"),
    COMMAND_LINES,
    ids=[f"{doc.name}:{' '.join(args)[:60]}" for doc, args in COMMAND_LINES],
)
def test_readme_command_line_parses(
    doc: Path, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths are checked against an empty folder
    try:
        check_command_line(args)
    except click.UsageError as exc:
        pytest.fail(f"{doc.name}: giflab-dask {shlex.join(args)}: {exc.format_message()}")


@pytest.mark.parametrize(
    "line",
    [
        "giflab-dask bath demo --out r.parquet",  # no such command
        "giflab-dask batch demo --output r.parquet",  # no such option
        "giflab-dask batch demo --scheduler cluster",  # not a choice
        "giflab-dask batch demo --workers 0",  # out of range
        "giflab-dask batch demo extra",  # left over
        "giflab-dask report --out r.html",  # RESULTS missing
        "giflab-dask cache",  # a group without its command
        "giflab-dask --cache-dir",  # option without its value
        "giflab-dask --cache-dir /c",  # no command
        "giflab-dask batch demo --metrics ,",  # refused by the option's callback
        "giflab-dask cache prune --max-bytes 2XB",  # idem
    ],
)
def test_check_command_line_rejects(
    line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    [args] = _command_lines(f"```bash\n{line}\n```\n")
    with pytest.raises(click.UsageError):
        check_command_line(args)


def test_command_line_extraction() -> None:
    text = (
        "```bash\n"
        "pip install . && giflab-dask demo-data demo && giflab-dask batch demo   # comment\n"
        "DASK_X=1 giflab-dask --cache-dir /c batch m.csv \\\n    --address 'tcp://h:1'\n"
        "dask worker tcp://h:1 &\n"
        "python -m giflab_dask config show\n"
        "```\n"
        "```\ngiflab-dask not-bash\n```\n"
    )
    assert _command_lines(text) == [
        ["demo-data", "demo"],
        ["batch", "demo"],
        ["--cache-dir", "/c", "batch", "m.csv", "--address", "tcp://h:1"],
        ["config", "show"],
    ]


def _synopsis_entries(text: str) -> list[list[str]]:
    """The words of each entry of the command-line synopsis in ``text`` (after the program)."""
    match = re.search(r"^## Command line\n\n```\n(.*?)^```", text, re.S | re.M)
    assert match, "no synopsis block after '## Command line'"
    entries: list[list[str]] = []
    for line in match.group(1).splitlines():
        words = line.split()
        if words[:1] == ["giflab-dask"]:
            entries.append(words[1:])
        elif words[:3] == ["python", "-m", "giflab_dask"]:
            entries.append(words[3:])
        else:  # an indented continuation
            entries[-1] += words
    return entries


def _options(command: click.Command) -> dict[str, click.Parameter]:
    return {o: p for p in command.params for o in (*p.opts, *p.secondary_opts) if o[:1] == "-"}


def _commands(group: click.Group, prefix: str = "") -> set[str]:
    """Every command and subcommand path of ``group``, such as ``cache info``."""
    found = set()
    for name, sub in group.commands.items():
        found.add(prefix + name)
        if isinstance(sub, click.Group):
            found |= _commands(sub, f"{prefix}{name} ")
    return found


def synopsis_problems(text: str) -> list[str]:
    """What the synopsis in ``text`` says that the CLI does not: a command or option it lacks,
    ``--opt a|b|c`` choices other than the option's, a command of the CLI not listed."""
    problems: list[str] = []
    listed: set[str] = set()
    for words in _synopsis_entries(text):
        command: click.Command | None = cli
        path = ["giflab-dask"]
        while isinstance(command, click.Group) and words and words[0] != "...":
            word, *words = words
            if word.startswith("--"):
                if word not in _options(command):
                    problems.append(f"{' '.join(path)}: no option {word}")
                words = words[1:]  # its metavar
                continue
            subs = {name: command.commands.get(name) for name in word.split("|")}
            problems += [f"no command {' '.join([*path, n])}" for n, s in subs.items() if not s]
            listed |= {" ".join([*path[1:], name]) for name, sub in subs.items() if sub}
            command = next((sub for sub in subs.values() if sub), None)
            if command is None:
                break
            path.append(word)
        options = _options(command) if command else {}
        for name, choices in re.findall(
            r"(--[a-z][a-z-]*)(?: ([\w-]+(?:\|[\w-]+)+))?", " ".join(words)
        ):
            where = f"{' '.join(path)} {name}"
            if name not in options:
                problems.append(f"{where}: no such option")
                continue
            param_type = options[name].type
            actual = set(param_type.choices) if isinstance(param_type, click.Choice) else set()
            if choices and set(choices.split("|")) != actual:
                problems.append(f"{where}: choices {choices}, the CLI has {sorted(actual)}")
    problems += [f"not listed: giflab-dask {name}" for name in sorted(_commands(cli) - listed)]
    return problems


def test_readme_synopsis_matches_the_cli() -> None:
    assert synopsis_problems(README.read_text(encoding="utf-8")) == []


def test_synopsis_problems_found() -> None:
    synopsis = "\n".join(
        [
            "## Command line\n\n```",
            "giflab-dask batch SOURCE --out results.parquet --scheduler threads|processes",
            "            [--outt X] [--align auto|time|index|content]",
            "giflab-dask --cache-dirr DIR ...",
            "giflab-dask decodes GIF...",
            "giflab-dask cache info|purge   both stores",
            "```",
        ]
    )
    problems = synopsis_problems(synopsis)
    assert problems[:5] == [
        "giflab-dask batch --scheduler: choices threads|processes, the CLI has "
        "['local-cluster', 'processes', 'sync', 'threads']",
        "giflab-dask batch --outt: no such option",
        "giflab-dask: no option --cache-dirr",
        "no command giflab-dask decodes",
        "no command giflab-dask cache purge",
    ]
    assert "not listed: giflab-dask validate" in problems[5:]
    assert "not listed: giflab-dask cache prune" in problems[5:]


def test_readme_pip_extras_exist() -> None:
    """Every ``pip install ...[extra]`` in the docs names an extra pyproject defines."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    defined = set(pyproject["project"]["optional-dependencies"])
    named = {
        extra.strip()
        for doc in DOCS
        for line in re.findall(r"pip install ([^`\n]*)", doc.read_text(encoding="utf-8"))
        for group in re.findall(r"\[([^\]]+)\]", line)
        for extra in group.split(",")
    }
    assert {"plots", "test", "distributed"} <= named, named
    assert named <= defined, named - defined
