"""The blocks of README.md and docs/*.md that restate the code (POST /jobs's fields, the
service's limits, the flags of `pipeline run` and `pipeline serve`, the files of a run) are
written by scripts/gen_docs.py from the code: a doc whose block differs from what the code gives
now fails here, and the fix is to run the script."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO_ROOT / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = load_gen_docs()


def test_every_generated_block_matches_the_code() -> None:
    stale = gen_docs.stale_docs()
    assert stale == [], f"docs differ from the code in {stale}: run `python scripts/gen_docs.py` and commit the result"


def test_the_docs_carry_every_block_and_each_names_what_was_missing() -> None:
    """Each generator's block is in a doc (a table nobody shows would check nothing), and the
    limits and decoders the docs once missed are in them now."""
    shown = {name for doc in gen_docs.DOCS for name in gen_docs.block_names((REPO_ROOT / doc).read_text())}
    assert shown == set(gen_docs.GENERATORS)
    service = (REPO_ROOT / "docs" / "service.md").read_text()
    for needed in ("| `max_takes` | 4 |", "| `max_upload_bytes` | 16000000 |", '"int8" \\| "compiled" \\| "torch"'):
        assert needed in service, needed


def test_a_changed_block_is_found_and_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand edit inside a block, or a field the code gained, makes the check fail; the
    rewrite restores exactly the code's text and leaves the prose around it alone."""
    limits = gen_docs.service_limits()
    text = f"prose before\n<!-- generated:service-limits -->\n{limits}<!-- /generated:service-limits -->\nafter\n"
    edited = text.replace("| `max_takes` | 4 |", "| `max_takes` | 8 |")
    assert edited != text
    (tmp_path / "docs").mkdir()
    for doc in gen_docs.DOCS:
        (tmp_path / doc).write_text(edited if doc == "docs/service.md" else "")
    monkeypatch.setitem(gen_docs.GENERATORS, "service-limits", lambda: limits)
    assert gen_docs.stale_docs(tmp_path) == ["docs/service.md: service-limits"]
    assert gen_docs.rewrite(edited, {"service-limits": limits}) == text
    with pytest.raises(ValueError, match="unknown generated block"):
        gen_docs.rewrite("<!-- generated:nothing -->\n<!-- /generated:nothing -->\n", {})
    with pytest.raises(ValueError, match="no closing"):
        gen_docs.rewrite("<!-- generated:service-limits -->\n", {"service-limits": limits})


def test_the_limits_table_is_the_code_comment_of_every_limit() -> None:
    import dataclasses

    from stemforge.pipeline.service import ServiceLimits

    comments = gen_docs._field_comments(ServiceLimits)
    assert set(comments) == {item.name for item in dataclasses.fields(ServiceLimits)}
    assert comments["max_upload_bytes"] == "a reference loop (POST /loops) above this gets 413"
    # the comment lines above a field belong to it too
    assert comments["worker_threads"].startswith("threads per worker process")


def test_the_readme_lists_every_command_of_the_cli() -> None:
    import argparse
    import re

    from stemforge.pipeline.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    readme = (REPO_ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `pipeline ([a-z-]+)", readme, re.MULTILINE))
    assert listed == set(commands), f"README's command table: missing {set(commands) - listed}, gone {listed - set(commands)}"
