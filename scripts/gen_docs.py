"""Rewrite the blocks of README.md and docs/*.md that restate the code, from the code.

    python scripts/gen_docs.py           # rewrite every generated block
    python scripts/gen_docs.py --check   # list the blocks that differ from the code; exit 1 if any

A generated block is the text between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
everything outside the markers is written by hand. tests/test_docs_generated.py fails when a
block differs from what the code gives now, so a changed field, limit, flag or file name cannot
leave a doc behind. The blocks:

- api-fields: the body of POST /jobs (JobRequest's JSON Schema: type, default, bounds, help).
- service-limits: configs/service.yaml's keys (ServiceLimits: defaults and the comments in its code).
- run-flags, serve-flags: the flags of `pipeline run` / `pipeline serve` with their defaults (argparse).
- run-folder: the files a `pipeline run --stems` writes, listed from a real one-bar run.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import json
import re
import sys
import tempfile
import textwrap
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", *sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "docs").glob("*.md")))
BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.DOTALL)
OPENING = re.compile(r"<!-- generated:([a-z-]+) -->")


def _cell(text: Any) -> str:
    """A value as one Markdown table cell: pipes escaped, one line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ POST /jobs

def _schema_type(prop: dict[str, Any]) -> str:
    branches = prop.get("anyOf", [prop])
    names = []
    for branch in branches:
        kind = branch.get("type", "any")
        if kind == "array":
            kind = f"list of {branch.get('items', {}).get('type', 'any')}"
        elif kind == "object":
            kind = f"{{name: {branch.get('additionalProperties', {}).get('type', 'any')}}}"
        names.append(kind)
    return " or ".join(names)


def _schema_values(prop: dict[str, Any]) -> str:
    """The values a field takes: its choices, range, length or pattern."""
    if "enum" in prop:
        return " | ".join(json.dumps(value) for value in prop["enum"])
    said = []
    for branch in prop.get("anyOf", [prop]):
        low, high = branch.get("minimum"), branch.get("maximum")
        if low is not None or high is not None:
            said.append(f"{'' if low is None else low} to {'' if high is None else high}".strip())
        if "maxLength" in branch:
            said.append(f"up to {branch['maxLength']} {'items' if branch.get('type') == 'array' else 'characters'}")
        if "maxItems" in branch or "maxProperties" in branch:
            said.append(f"up to {branch.get('maxItems', branch.get('maxProperties'))} items")
        if "pattern" in branch:
            said.append(f"`{branch['pattern']}`")
    return ", ".join(said)


def api_fields() -> str:
    from stemforge.pipeline.service import JobRequest

    schema = JobRequest.model_json_schema()
    rows = []
    for name, prop in schema["properties"].items():
        default = "—" if "default" not in prop else json.dumps(prop["default"])
        rows.append((f"`{name}`", _schema_type(prop), default, _schema_values(prop), prop.get("description", "")))
    return _table(("field", "type", "default", "values", "what"), rows)


# ------------------------------------------------------------------ configs/service.yaml

def _field_comments(cls: type) -> dict[str, str]:
    """Each dataclass field's comment in the class's source: the comment lines above it and
    the one at the end of its line."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    trailing: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and lines[token.start[0] - 1].strip() != token.string.strip():
            trailing[token.start[0]] = token.string.lstrip("#").strip()
    comments = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above, index = [], node.lineno - 2
            while index >= 0 and lines[index].strip().startswith("#"):
                above.insert(0, lines[index].strip().lstrip("#").strip())
                index -= 1
            said = " ".join([*above, trailing.get(node.lineno, "")]).strip()
            if not said:
                raise SystemExit(f"gen_docs: {cls.__name__}.{node.target.id} has no comment to document it by")
            comments[node.target.id] = said
    return comments


def service_limits() -> str:
    from stemforge.pipeline.service import ServiceLimits

    comments = _field_comments(ServiceLimits)
    rows = [(f"`{item.name}`", "null" if item.default is None else item.default,
             comments[item.name]) for item in dataclasses.fields(ServiceLimits)]
    return _table(("key", "default", "what"), rows)


# ------------------------------------------------------------------ CLI flags

def _command_parser(command: str) -> argparse.ArgumentParser:
    from stemforge.pipeline.cli import build_parser

    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return commands.choices[command]


def _flag_rows(command: str) -> list[tuple[str, str, str]]:
    rows = []
    for action in _command_parser(command)._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        flag = ", ".join(f"`{option}`" for option in action.option_strings) or f"`{action.metavar or action.dest}`"
        default = action.default
        if isinstance(action, argparse._StoreTrueAction) or default in (None, "", [], ()) or default is argparse.SUPPRESS:
            shown = ""  # a switch is off unless given; an empty default is "unset" (the help says what then)
        else:
            shown = f"`{default}`"
        rows.append((flag, shown, (action.help or "").replace("%(default)s", str(default))))
    return rows


def run_flags() -> str:
    return _table(("flag", "default", "what"), _flag_rows("run"))


def serve_flags() -> str:
    return _table(("flag", "default", "what"), _flag_rows("serve"))


# ------------------------------------------------------------------ the files of a run

def run_folder() -> str:
    """The files of a real one-bar `pipeline run --stems` with the shipped model, their common
    name shown as <name>."""
    from stemforge.pipeline.request import RunRequest
    from stemforge.pipeline.run import run

    with tempfile.TemporaryDirectory() as scratch:
        result = run(RunRequest(prompt="lofi 80bpm", bars=1, seed=1, stems=True, out=Path(scratch) / "run"))
        folder = Path(result.run_dir)
        files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    name = next(Path(path).name[: -len("_mix.wav")] for path in files if path.endswith("_mix.wav"))
    listing = sorted((path.replace(name, "<name>") for path in files), key=lambda p: (p.count("/"), p))
    return "```\n" + "\n".join(listing) + "\n```\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "api-fields": api_fields,
    "service-limits": service_limits,
    "run-flags": run_flags,
    "serve-flags": serve_flags,
    "run-folder": run_folder,
}


# ------------------------------------------------------------------ rewriting

def block_names(text: str) -> list[str]:
    return OPENING.findall(text)


def rewrite(text: str, generated: dict[str, str], where: str = "") -> str:
    """`text` with every generated block's body replaced by `generated[name]`."""
    opened, closed = block_names(text), [match.group("name") for match in BLOCK.finditer(text)]
    if opened != closed:
        unclosed = sorted(set(opened) - set(closed)) or opened
        raise ValueError(f"{where}: generated block(s) {unclosed} have no closing <!-- /generated:NAME -->")
    unknown = sorted(set(opened) - set(generated))
    if unknown:
        raise ValueError(f"{where}: unknown generated block(s) {unknown}; known: {sorted(GENERATORS)}")
    return BLOCK.sub(lambda match: match.group(1) + generated[match.group("name")] + match.group(4), text)


def generate(names: set[str]) -> dict[str, str]:
    return {name: GENERATORS[name]() for name in sorted(names)}


def stale_docs(root: Path = REPO_ROOT) -> list[str]:
    """'doc: block' for every generated block that differs from what the code gives now."""
    texts = {doc: (root / doc).read_text() for doc in DOCS}
    generated = generate({name for text in texts.values() for name in block_names(text)})
    stale = []
    for doc, text in texts.items():
        fresh = rewrite(text, generated, doc)
        old = {match.group("name"): match.group("body") for match in BLOCK.finditer(text)}
        new = {match.group("name"): match.group("body") for match in BLOCK.finditer(fresh)}
        stale += [f"{doc}: {name}" for name in old if old[name] != new[name]]
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the blocks that differ; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_docs()
        for line in stale:
            print(f"stale: {line}")
        return 1 if stale else 0
    texts = {doc: (REPO_ROOT / doc).read_text() for doc in DOCS}
    generated = generate({name for text in texts.values() for name in block_names(text)})
    for doc, text in texts.items():
        fresh = rewrite(text, generated, doc)
        if fresh != text:
            (REPO_ROOT / doc).write_text(fresh)
            print(f"rewrote {doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
