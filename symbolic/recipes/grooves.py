"""The shipped groove pool's recipe: the Groove MIDI Dataset's 4/4 beat takes read again as
played, and a template per genre measured from them (symbolic/runtime/groove.py measures a
template and applies it; this is the part that needs the corpus reader and the data set).
`scripts/build_grooves.py` writes symbolic/runtime/grooves.json with it."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from stemforge.configs import resolve_config
from stemforge.symbolic.music.genres import genre_entry
from stemforge.symbolic.recipes.corpus import CorpusConfig, load_gmd, read_gmd_hits, read_gmd_info
from stemforge.symbolic.runtime.groove import GroovePool, Performance, template_from_performances


def gmd_performances(gmd_root: Path, splits: Sequence[str] = ("train",)) -> list[Performance]:
    """The GMD 4/4 beat takes of `splits` whose style the corpus recipe maps to a genre
    (symbolic.recipes.corpus.load_gmd chooses them, configs/corpus/default.yaml maps the styles),
    read again as played: the corpus keeps only the grid, the feel is in what it drops."""
    gmd_root = Path(gmd_root)
    config = CorpusConfig.load(resolve_config("default", "corpus"))
    config.gmd_splits = list(splits)
    rows = {f"gmd:{row['id']}": row for row in read_gmd_info(gmd_root)}
    performances = []
    for take in load_gmd(gmd_root, config, Counter()):
        row = rows[take.group]
        hits = read_gmd_hits(gmd_root / row["midi_filename"]) or []
        performances.append(Performance(take.group, take.genre, take.bpm, sorted(hits), row["style"]))
    return performances


def build_pool(performances: Sequence[Performance], genres: Iterable[str]) -> GroovePool:
    """A template per genre: from its own GMD takes, or pooled from its donors' takes."""
    by_genre: dict[str, list[Performance]] = defaultdict(list)
    for performance in performances:
        by_genre[performance.genre].append(performance)
    templates = {}
    for genre in genres:
        entry = genre_entry(genre).groove
        takes = [p for donor in entry.donors for p in by_genre[donor]] if entry.donors else by_genre[genre]
        templates[entry.template] = template_from_performances(entry.template, takes, entry.donors)
    return GroovePool(templates)
