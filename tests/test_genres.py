"""The genre table (configs/genres.yaml, symbolic/music/genres.py): every genre is complete, a
missing part is an error naming the genre and the part, nothing falls back to another
genre silently, and "add a genre" touches the files docs/architecture.md says it does."""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from stemforge.configs import CONFIG_DIR
from stemforge.symbolic.music.genres import (
    GENRES_PATH,
    PARTS,
    PRESETS_DIR,
    UNLABELLED_GENRE,
    GenreError,
    genre_entry,
    genre_table,
    load_genre_table,
    missing_data,
)
from stemforge.symbolic.music.harmony import TABLE_PATH as PROGRESSIONS_PATH
from stemforge.symbolic.runtime.form import FORMS_PATH
from stemforge.symbolic.runtime.groove import GROOVES_PATH

REPO = Path(__file__).resolve().parents[1]
GENRES = genre_table().names
SHIPPED_DATA = {"grooves": GROOVES_PATH, "progressions": PROGRESSIONS_PATH, "forms": FORMS_PATH}


def shipped_table() -> dict:
    return yaml.safe_load(GENRES_PATH.read_text())


def write_table(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "genres.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- complete genres


@pytest.mark.parametrize("genre", GENRES, ids=GENRES)
def test_every_genre_has_every_part_and_its_data(genre: str) -> None:
    """Each listed genre declares every part, and every data file holds what it names
    (groove template, progression sources, Billboard forms, FX preset)."""
    entry = genre_entry(genre)
    assert entry.name == genre
    assert entry.corpus is not None and entry.render_preset is not None and entry.tempo.range is not None, genre
    assert missing_data(entry, **SHIPPED_DATA) == [], f"genre {genre!r} is incomplete"


@pytest.mark.parametrize("genre", GENRES, ids=GENRES)
def test_every_genre_is_used_through_its_entry(genre: str) -> None:
    """The stages read a genre's parts from its entry: the groove pool has its template,
    the renderer loads its preset, harmony draws its progression, form fits its form."""
    from stemforge.audio.effects import load_preset
    from stemforge.symbolic.music.conditions import build_conditions
    from stemforge.symbolic.music.harmony import default_progression
    from stemforge.symbolic.runtime.form import default_form
    from stemforge.symbolic.runtime.groove import default_pool

    entry = genre_entry(genre)
    assert default_pool().template(entry.groove.template).name == entry.groove.template
    assert load_preset(entry.render_preset).name == entry.render_preset
    conditions = build_conditions(genre, seed=5)
    assert (conditions.bpm, conditions.loop, conditions.density) == (entry.tempo.default, entry.loop, entry.density)
    assert conditions.key_obj.mode == entry.key_mode
    assert default_progression(genre, conditions.key_obj, 5).chords
    assert default_form(genre, 32, 5).bars == 32


def test_the_label_free_material_has_its_own_entry() -> None:
    """`--genre none` composes with the table's `unlabelled` parts, not another genre's."""
    from stemforge.symbolic.music.conditions import build_conditions

    unlabelled = genre_entry(UNLABELLED_GENRE)
    assert unlabelled is genre_table().unlabelled and UNLABELLED_GENRE not in GENRES
    assert missing_data(unlabelled, **SHIPPED_DATA) == []
    conditions = build_conditions("", genre="none", seed=1)
    assert conditions.genre == UNLABELLED_GENRE and conditions.bpm == unlabelled.tempo.default
    assert conditions.loop == unlabelled.loop


def test_a_genre_not_in_the_table_is_named() -> None:
    with pytest.raises(GenreError, match=r"genre 'polka' is not in the genre table .*genres: lofi, hiphop"):
        genre_entry("polka")


# ----------------------------------------------------------------------------- named errors


@pytest.mark.parametrize("part", PARTS)
def test_a_part_removed_from_one_genre_is_named(tmp_path: Path, part: str) -> None:
    data = shipped_table()
    del data["genres"]["trap"][part]
    with pytest.raises(GenreError, match=rf"^genre 'trap', {part}: missing; every genre declares "):
        load_genre_table(write_table(tmp_path, data))


@pytest.mark.parametrize(("part", "value", "message"), [
    ("render_preset", None, "render_preset: the name of its FX preset"),
    ("corpus", None, "corpus: the default corpus's recipe and rules"),
    ("tempo", {"default": 140, "range": None}, "tempo: range: .* is missing"),
    ("form", {}, "form: names either a billboard_style or a convention"),
    ("groove", {"template": "trap", "donors": ["hiphop"]}, "groove: missing swing"),
    ("groove", {"template": "trap", "donors": ["grunge"], "swing": 50}, "groove donors: grunge not in the table"),
    ("neighbours", ["hiphop", "polka"], "neighbours: polka not in the table"),
    ("key_mode", "dorian", "key_mode: 'dorian' is not one of major, minor"),
    ("instruments", {"bass": 38}, "instruments: missing melody"),
    ("words", ["trap", "lofi"], "words: 'lofi' already names 'lofi'"),
])
def test_a_broken_part_is_named(tmp_path: Path, part: str, value: object, message: str) -> None:
    data = shipped_table()
    data["genres"]["trap"][part] = value
    with pytest.raises(GenreError, match=rf"genre 'trap', {message}"):
        load_genre_table(write_table(tmp_path, data))


def test_data_a_genre_names_but_its_files_lack_is_named(tmp_path: Path) -> None:
    """Each data file without what a genre names: one line naming the genre, the part and the file."""
    grooves = json.loads(GROOVES_PATH.read_text())
    del grooves["templates"]["trap"]
    (tmp_path / "grooves.json").write_text(json.dumps(grooves))
    progressions = json.loads(PROGRESSIONS_PATH.read_text())
    del progressions["sources"]["wjd"]
    (tmp_path / "progressions.json").write_text(json.dumps(progressions))
    forms = json.loads(FORMS_PATH.read_text())
    del forms["styles"]["funk"]
    (tmp_path / "forms.json").write_text(json.dumps(forms))
    shutil.copytree(PRESETS_DIR, tmp_path / "render")
    (tmp_path / "render" / "soul.yaml").unlink()
    paths = {"grooves": tmp_path / "grooves.json", "progressions": tmp_path / "progressions.json",
             "forms": tmp_path / "forms.json", "presets": tmp_path / "render"}

    found = {genre: missing_data(genre_entry(genre), **paths) for genre in GENRES}
    assert {genre: len(lines) for genre, lines in found.items() if lines} == {
        "trap": 1, "jazz": 1, "lofi": 1, "funk": 1, "afrobeat": 1, "soul": 1}
    assert found["trap"][0].startswith("genre 'trap', groove: no template 'trap' in ")
    assert found["jazz"][0].startswith("genre 'jazz', harmony: no source 'wjd' in ")
    assert found["afrobeat"][0].startswith("genre 'afrobeat', form: no Billboard style 'funk' in ")
    assert found["soul"][0].startswith("genre 'soul', render_preset: no ") and found["soul"][0].endswith("soul.yaml")


def test_a_missing_groove_template_stops_the_piece_naming_the_genre(monkeypatch) -> None:
    """Not a "--swing" message, and not the pop groove in its place."""
    from stemforge.symbolic.music.conditions import build_conditions
    from stemforge.symbolic.runtime import groove
    from stemforge.symbolic.runtime.compose import ComposeError, Feel, apply_groove

    pool = groove.default_pool()
    without_trap = replace(pool, templates={k: v for k, v in pool.templates.items() if k != "trap"})
    monkeypatch.setattr(groove, "default_pool", lambda: without_trap)
    with pytest.raises(ComposeError, match=r"^genre 'trap', groove: no template 'trap' in the groove pool"):
        apply_groove({}, build_conditions("trap", seed=1), Feel(), set(), seed=1)


def test_a_missing_preset_stops_the_render_naming_the_genre(monkeypatch) -> None:
    """Not a dry render with a warning in its place."""
    from stemforge.audio import render
    from stemforge.audio.stems import RenderError

    broken = replace(genre_entry("trap"), render_preset="no_such_preset")
    monkeypatch.setattr(render, "genre_entry", lambda name: broken)
    with pytest.raises(RenderError, match=r"^genre 'trap', render_preset: --preset 'no_such_preset'"):
        render._render_preset(render.RenderOptions(), "trap", [])


def test_missing_progressions_and_forms_stop_naming_the_genre(monkeypatch) -> None:
    """Not pop's progressions or lofi's form in their place."""
    from stemforge.symbolic.music import harmony
    from stemforge.symbolic.music.harmony import ChordError
    from stemforge.symbolic.runtime import form
    from stemforge.symbolic.runtime.form import FormError

    entry = genre_entry("jazz")
    broken = replace(entry, harmony=replace(entry.harmony, sources=(("no_such_source", 1.0),)))
    monkeypatch.setattr(harmony, "genre_entry", lambda name: broken)
    with pytest.raises(ChordError, match=r"^genre 'jazz', harmony: the progression table has no source "):
        harmony.default_candidates.__wrapped__("jazz", "minor")
    monkeypatch.setattr(form, "load_forms", lambda: {"styles": {}})
    with pytest.raises(FormError, match=r"^genre 'funk', form: the form table .* has no Billboard 'funk' forms"):
        form.default_form("funk", 32, 1)


# ----------------------------------------------------------------------------- the recipe

# docs/architecture.md, "Add a genre": the files a new genre touches (others only in special
# cases: progressions.json / forms.json for a new harmony source or Billboard style, the corpus
# recipe's gmd_styles where GMD has a style of it, corpus_rules.py for a new drum transform).
RECIPE_FILES = ("configs/genres.yaml", "configs/render/<genre>.yaml", "symbolic/runtime/grooves.json")


def test_adding_a_genre_needs_exactly_the_recipes_files(tmp_path: Path) -> None:
    """A new entry (a copy of pop's under a new name) loads; what it still lacks is exactly the
    recipe's data files, the groove template and the FX preset, each named; with those added,
    it is complete. The corpus recipe takes its drum sources, tempo range and melody source
    from the entry: configs/corpus/default.yaml names no genre's."""
    from stemforge.symbolic.recipes.corpus import CorpusConfig

    assert all((REPO / f.replace("<genre>", "pop")).is_file() for f in RECIPE_FILES)
    data = shipped_table()
    new = dict(data["genres"]["pop"], words=["testwave"], related=[], render_preset="testwave",
               groove={**data["genres"]["pop"]["groove"], "template": "testwave"})
    data["genres"]["testwave"] = new
    table = load_genre_table(write_table(tmp_path, data))
    entry = table.entry("testwave")
    assert table.names[-1] == "testwave"

    shutil.copytree(PRESETS_DIR, tmp_path / "render")
    grooves = json.loads(GROOVES_PATH.read_text())
    (tmp_path / "grooves.json").write_text(json.dumps(grooves))
    paths = {**SHIPPED_DATA, "grooves": tmp_path / "grooves.json", "presets": tmp_path / "render"}
    lacking = missing_data(entry, **paths)
    assert [line.split(":")[0] for line in lacking] == ["genre 'testwave', groove", "genre 'testwave', render_preset"]

    shutil.copy(PRESETS_DIR / "pop.yaml", tmp_path / "render" / "testwave.yaml")
    grooves["templates"]["testwave"] = grooves["templates"]["pop"]
    (tmp_path / "grooves.json").write_text(json.dumps(grooves))
    assert missing_data(entry, **paths) == []

    recipe = yaml.safe_load((CONFIG_DIR / "corpus" / "default.yaml").read_text())
    assert not {"drums", "bpm_ranges", "melody_sources"} & set(recipe)
    assert set(recipe["gmd_styles"].values()) <= set(GENRES)
    config = CorpusConfig.load(CONFIG_DIR / "corpus" / "default.yaml")
    assert config.drums == {g: list(genre_entry(g).corpus.drums) for g in GENRES}
    assert config.bpm_ranges == {g: list(genre_entry(g).tempo.range) for g in GENRES}
    assert config.melody_sources == {g: genre_entry(g).corpus.melody_source for g in GENRES
                                     if genre_entry(g).corpus.melody_source != "pop909"} == {"jazz": "wjd"}


# The package's folders (bench/ and scripts/ are tools run by hand; they read the table's views).
CODE_FOLDERS = ("symbolic", "audio", "eval", "pipeline", "stemforge")


def _genre_keyed_literals(path: Path) -> list[str]:
    """Dict keys and set members of a module that are two or more genre names: a table
    keyed by genre, which belongs in configs/genres.yaml."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        items = node.keys if isinstance(node, ast.Dict) else node.elts if isinstance(node, ast.Set) else []
        names = [i.value for i in items if isinstance(i, ast.Constant) and i.value in GENRES]
        if len(names) >= 2:
            found.append(f"{path.relative_to(REPO)}:{node.lineno} ({', '.join(names[:4])})")
    return found


def test_no_module_keeps_its_own_table_keyed_by_genre() -> None:
    """Adding a genre edits no Python file: no code folder holds a dict or set literal of genre
    names (the views of the table are built from it)."""
    modules = [p for folder in CODE_FOLDERS for p in sorted((REPO / folder).rglob("*.py"))
               if "default_model" not in p.parts]
    assert len(modules) > 50
    assert [hit for path in modules for hit in _genre_keyed_literals(path)] == []


def test_a_broken_table_is_one_line_from_the_cli(tmp_path: Path) -> None:
    """The table is read when the CLI starts: a broken entry exits 2 with one line, no traceback."""
    import subprocess
    import sys

    data = shipped_table()
    del data["genres"]["house"]["loops"]
    path = write_table(tmp_path, data)
    code = ("import stemforge.symbolic.music.genres as g; from pathlib import Path; "
            f"g.load_genre_table.__defaults__ = (Path({str(path)!r}),); import stemforge.pipeline.cli")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"error: genre 'house', loops: missing; every genre declares "
                                        f"{', '.join(PARTS)} ({path})"]
