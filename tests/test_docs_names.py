"""The docs show the files stemforge writes as it names them today (`<genre>_<bpm>bpm_<Key>_take<tag>`),
and the README's sample-pack example writes WAVs (it had no --stems: 0 WAVs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1]
NAME = r"[a-z]+_\d+(?:\.\d+)?bpm_[A-G][#b]?(?:maj|min)_take[0-9a-f]{4}"
OUTPUT = re.compile(rf"(?:stems/|midi/)?{NAME}(?:_(?:drums|bass|melody|mix|full))?\.(?:wav|mid|als)")
PLACEHOLDER = re.compile(r"<name>|<genre>_<bpm>bpm_<Key>_take<tag>")


@pytest.mark.parametrize("doc", ["docs/rendering.md", "docs/service.md", "README.md"])
def test_every_output_file_a_doc_shows_has_todays_name(doc: str) -> None:
    text = (DOCS / doc).read_text()
    shown = re.findall(r"`((?:stems/|midi/)?[^`\s]*?(?:mix|drums|bass|melody|full)[^`\s/]*\.(?:wav|mid|als))`", text)
    stale = [name for name in shown if not OUTPUT.fullmatch(name) and not PLACEHOLDER.search(name)]
    assert stale == [], f"{doc} shows old file names: {stale}"


def test_the_readmes_sample_pack_example_renders_stems() -> None:
    lines = [line for line in (DOCS / "README.md").read_text().splitlines() if line.startswith("pipeline batch ")]
    assert lines and all("--stems" in line for line in lines), lines
