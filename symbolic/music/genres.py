"""The genre table: everything a genre is, read from one file (configs/genres.yaml) into
frozen dataclasses.

Every stage asks `genre_entry(name)` for a genre's parts instead of keeping its own table
keyed by genre names, so adding a genre is its entry plus its data (a groove template in
symbolic/runtime/grooves.json) and its FX preset (configs/render/<name>.yaml). A part missing from
an entry is an error naming the genre and the part when the table loads; a part an entry
names that its data file lacks is an error naming both where it is used (and
`missing_data` lists them all for the tests). Nothing falls back silently to another
genre's values.

This module sits at the bottom of the package: it imports nothing of stemforge but the
config folder and the error base class.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import yaml

from stemforge.configs import CONFIG_DIR
from stemforge.symbolic.core.errors import UserError

GENRES_PATH = CONFIG_DIR / "genres.yaml"
UNLABELLED_GENRE = "unknown"  # what `prepare` calls material without a genre label
KEY_MODES = ("major", "minor")
VOICINGS = ("triads", "keep", "add")
DENSITIES: tuple[str, ...] = ("sparse", "normal", "busy")
LOOP_CHOICES: tuple[int, ...] = (0, 1, 2, 4, 8)  # 0 = off (through-composed); 8 = phrases that develop
BASS_RHYTHMS = ("kick", "kick_bounce", "walking", "tumbao", "eighths", "sustain")
BASS_TONES = ("root", "third", "fifth", "seventh", "octave")
PITCHED_ROLES = ("bass", "melody")
MELODY_SOURCES = ("pop909", "wjd")  # where a genre's corpus melodies (and, for WJD, bass lines) come from
LINE_SETS = ("pop909", "wjd", "freedoom", None)  # real melody and bass lines (eval/real_music.py)


class GenreError(UserError):
    """A genre the table does not hold, or an entry with a part missing or malformed: the
    message names the genre and the part."""

    field = "genre"


@dataclass(frozen=True)
class Tempo:
    default: float  # bpm when neither prompt nor flag names one
    range: tuple[float, float] | None  # the corpus's clamp for real grooves and draw for made ones


@dataclass(frozen=True)
class GenreHarmony:
    """Where a genre's default progressions come from (docs/harmony.md): table sources
    with their share of the draws, and how the drawn chords are voiced: "triads" drops
    7ths, "keep" plays them as the source does (ii7 V7 Imaj7, a soul i7 vamp), "add"
    makes every chord its diatonic 7th chord (lofi and hip-hop's jazzy loops)."""

    sources: tuple[tuple[str, float], ...]
    voicing: str = "triads"


INTO_SECTION = ("fill", "build", "none")
DOWNBEATS = ("crash", "accent")


@dataclass(frozen=True)
class FormDefault:
    """The form a piece gets when none is asked: the real forms of a Billboard style, or a
    documented convention of (section, bars)."""

    billboard_style: str | None = None
    convention: tuple[tuple[str, int], ...] | None = None
    # what leads into a new section of a form: its drummers fill, or (dance music) build to
    # a drop with a snare roll and an 8th of silence, or nothing (ambient)
    into_section: str = "fill"
    downbeat: str = "crash"  # what marks a new section's downbeat: a crash, or the kick accented


@dataclass(frozen=True)
class GrooveDefault:
    template: str  # its template in symbolic/runtime/grooves.json
    donors: tuple[str, ...]  # genres whose GMD takes build the template when GMD has none of its own
    swing: float  # default swing, DAW percent (50 straight, 66.7 triplet)


@dataclass(frozen=True)
class GenreStyle:
    """How a genre's loops are built."""

    drum_period_bars: int  # drums repeat every 1 or 2 bars inside the loop
    kick_lock: float  # 0..1: how strongly bass onsets are pulled onto the kicks (off-kick notes cost)
    kick_cover: float | None = None  # 0..1: how strongly every kick must get a bass note; None: kick_lock
    fills: bool = True  # the last bar of an 8-bar phrase is a drum fill (not in four-on-the-floor genres)
    breathes: float = 0.5  # chance that the melody rests in the last bar of an 8-bar phrase
    walking: bool = False  # the bass walks: a step or a new note each beat, not repeats (jazz)

    @property
    def cover(self) -> float:
        return self.kick_lock if self.kick_cover is None else self.kick_cover


@dataclass(frozen=True)
class BassStyle:
    """How a genre's corpus bass moves: which rhythm and which chord tones (docs/corpus.md)."""

    rhythm: str  # kick | kick_bounce | walking | tumbao | eighths | sustain
    gate: float  # share of the time to the next bass note that the note sounds
    weak_tones: tuple[str, ...]  # choices for notes that are not on a chord change / downbeat
    velocity: int


@dataclass(frozen=True)
class MelodyRules:
    """How the corpus re-expresses a source melody in the genre's beats."""

    stretch: int  # 2: half-time, one source beat = two beats
    loop_bars: int | None  # electronic hooks repeat every so many bars
    velocity: float  # factor on the source velocities
    retimed: bool  # the corpus's provenance says "retimed by rules" (stretched, looped or swung)
    legato: bool  # each note held to the next one, at most a bar (short notes dropped first)


@dataclass(frozen=True)
class CorpusRules:
    drums: tuple[str, ...]  # drum sources, best first: "<transform>:<genre of the GMD grooves>", "freedoom", "rule"
    melody_source: str  # pop909 | wjd
    bass: BassStyle
    melody: MelodyRules
    piano_bass: bool  # the derived bass takes the POP909 pianist's low notes as its pitches
    fills: bool  # real GMD fills at phrase ends
    fill_donors: tuple[str, ...]  # genres whose fills it borrows besides its own


@dataclass(frozen=True)
class RealReference:
    """Where a genre's real music is, for the quality figures (eval/real_music.py)."""

    gmd_drums: str | None  # the GMD style (as the corpus maps styles) whose grooves are its real drums
    lines: str | None  # the set of its real melody and bass lines: pop909 | wjd | freedoom
    billboard_chords: tuple[str, ...] | None  # Billboard artist styles of its real chords
    kick_locked: bool  # its real bass and kick lock: the kick figures are read over these genres


@dataclass(frozen=True)
class Genre:
    name: str
    words: tuple[str, ...]
    related: tuple[str, ...]
    neighbours: tuple[str, ...]
    tempo: Tempo
    key_mode: str
    loop: int
    density: str
    harmony: GenreHarmony
    form: FormDefault
    groove: GrooveDefault
    loops: GenreStyle
    instruments: dict[str, int]
    render_preset: str | None
    musicgen_text: str
    reference: RealReference | None  # None only for the label-free material
    corpus: CorpusRules | None  # None only for the label-free material


PARTS: tuple[str, ...] = tuple(f.name for f in fields(Genre) if f.name != "name")


# ----------------------------------------------------------------------------- reading


class _Entry:
    """One entry's mapping, read part by part; every complaint names the genre and the part."""

    def __init__(self, name: str, data: object, path: Path) -> None:
        self.name, self.path = name, path
        if not isinstance(data, dict):
            self.fail("", "an entry is a mapping of its parts")
        unknown = sorted(set(data) - set(PARTS))
        if unknown:
            self.fail("", f"unknown part(s) {unknown}; the parts are {', '.join(PARTS)}")
        self.data: dict[str, Any] = data

    def fail(self, part: str, problem: str) -> NoReturn:
        where = f", {part}" if part else ""
        raise GenreError(f"genre {self.name!r}{where}: {problem} ({self.path})")

    def part(self, part: str) -> Any:
        if part not in self.data:
            self.fail(part, f"missing; every genre declares {', '.join(PARTS)}")
        return self.data[part]

    def mapping(self, part: str, value: object, required: tuple[str, ...], optional: tuple[str, ...] = ()
                ) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(part, f"a mapping of {', '.join(required + optional)}")
        missing = [k for k in required if k not in value]
        if missing:
            self.fail(part, f"missing {', '.join(missing)}")
        unknown = sorted(set(value) - set(required) - set(optional))
        if unknown:
            self.fail(part, f"unknown key(s) {unknown}; known: {', '.join(required + optional)}")
        return value

    def words(self, part: str) -> tuple[str, ...]:
        value = self.part(part)
        if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
            self.fail(part, "a list of words")
        return tuple(value)

    def number(self, part: str, value: object, low: float, high: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not low <= value <= high:
            self.fail(part, f"{value!r} is not a number in {low:g}-{high:g}")
        return value  # as the YAML gives it: an int stays an int (80 bpm is printed as 80)

    def choice(self, part: str, value: object, choices: tuple) -> Any:
        if value not in choices:
            self.fail(part, f"{value!r} is not one of {', '.join(map(str, choices))}")
        return value

    def flag(self, part: str, value: object) -> bool:
        if not isinstance(value, bool):
            self.fail(part, f"{value!r} is not true or false")
        return bool(value)


def _reference(entry: _Entry, listed: bool) -> RealReference | None:
    """Where a genre's real music is; none for the label-free material."""
    data = entry.part("reference")
    if data is None:
        if listed:
            entry.fail("reference", "where its real music is (gmd_drums, lines, billboard_chords, kick_locked)")
        return None
    real = entry.mapping("reference", data, ("gmd_drums", "lines", "billboard_chords", "kick_locked"))
    chords = real["billboard_chords"]
    if chords is not None and (not isinstance(chords, list) or not all(isinstance(c, str) for c in chords)):
        entry.fail("reference", "billboard_chords is a list of Billboard artist styles or null")
    if not (real["gmd_drums"] is None or isinstance(real["gmd_drums"], str)):
        entry.fail("reference", "gmd_drums is a GMD style or null")
    return RealReference(real["gmd_drums"], entry.choice("reference lines", real["lines"], LINE_SETS),
                         None if chords is None else tuple(chords),
                         entry.flag("reference kick_locked", real["kick_locked"]))


def _corpus(entry: _Entry, listed: bool) -> CorpusRules | None:
    """The default corpus's recipe and rules of a genre; none for the label-free material."""
    data = entry.part("corpus")
    if data is None:
        if listed:
            entry.fail("corpus", "the default corpus's recipe and rules (drums, melody_source, bass, melody, "
                                 "piano_bass, fills, fill_donors)")
        return None
    rules = entry.mapping("corpus", data, ("drums", "melody_source", "bass", "melody", "piano_bass", "fills",
                                           "fill_donors"))
    if not isinstance(rules["drums"], list) or not rules["drums"] or not all(isinstance(d, str) for d in rules["drums"]):
        entry.fail("corpus", "drums is a list of drum sources, best first")
    if not isinstance(rules["fill_donors"], list):
        entry.fail("corpus", "fill_donors is a list of genres")
    bass = entry.mapping("corpus bass", rules["bass"], ("rhythm", "gate", "weak_tones", "velocity"))
    tones = bass["weak_tones"]
    if not isinstance(tones, list) or not tones or any(t not in BASS_TONES for t in tones):
        entry.fail("corpus bass", f"weak_tones is a list of {', '.join(BASS_TONES)}")
    melody = entry.mapping("corpus melody", rules["melody"], ("stretch", "loop_bars", "velocity", "retimed", "legato"))
    loop_bars = melody["loop_bars"]
    return CorpusRules(
        tuple(rules["drums"]), entry.choice("corpus melody_source", rules["melody_source"], MELODY_SOURCES),
        BassStyle(entry.choice("corpus bass", bass["rhythm"], BASS_RHYTHMS),
                  entry.number("corpus bass gate", bass["gate"], 0, 1), tuple(tones),
                  int(entry.number("corpus bass velocity", bass["velocity"], 1, 127))),
        MelodyRules(int(entry.number("corpus melody stretch", melody["stretch"], 1, 4)),
                    None if loop_bars is None else int(entry.number("corpus melody loop_bars", loop_bars, 1, 32)),
                    entry.number("corpus melody velocity", melody["velocity"], 0, 2),
                    entry.flag("corpus melody retimed", melody["retimed"]),
                    entry.flag("corpus melody legato", melody["legato"])),
        entry.flag("corpus piano_bass", rules["piano_bass"]), entry.flag("corpus fills", rules["fills"]),
        tuple(rules["fill_donors"]),
    )


def _genre(name: str, data: object, path: Path, listed: bool) -> Genre:
    entry = _Entry(name, data, path)
    tempo = entry.mapping("tempo", entry.part("tempo"), ("default", "range"))
    bpm_range = tempo["range"]
    if bpm_range is None and listed:
        entry.fail("tempo", "range: [low, high] is missing")
    if bpm_range is not None:
        if not isinstance(bpm_range, list) or len(bpm_range) != 2:
            entry.fail("tempo", "range is [low, high]")
        low, high = (entry.number("tempo range", v, 20, 300) for v in bpm_range)
        if low > high:
            entry.fail("tempo", f"range [{low:g}, {high:g}] runs backwards")
        bpm_range = (low, high)
    harmony = entry.mapping("harmony", entry.part("harmony"), ("sources", "voicing"))
    sources = harmony["sources"]
    if not isinstance(sources, dict) or not sources:
        entry.fail("harmony", "sources is a mapping of progression-table source to its share")
    form = entry.mapping("form", entry.part("form"), (),
                         ("billboard_style", "convention", "into_section", "downbeat"))
    if (form.get("billboard_style") is None) == (form.get("convention") is None):
        entry.fail("form", "names either a billboard_style or a convention [[section, bars], ...]")
    convention = form.get("convention")
    if convention is not None:
        if not isinstance(convention, list) or not all(
                isinstance(s, list) and len(s) == 2 and isinstance(s[0], str) and isinstance(s[1], int)
                for s in convention):
            entry.fail("form", "convention is a list of [section, bars]")
        convention = tuple((str(s), int(b)) for s, b in convention)
    groove = entry.mapping("groove", entry.part("groove"), ("template", "donors", "swing"))
    if not isinstance(groove["template"], str) or not isinstance(groove["donors"], list):
        entry.fail("groove", "template is a name and donors a list of genres")
    loops = entry.mapping("loops", entry.part("loops"), ("drum_period_bars", "kick_lock"),
                          ("kick_cover", "fills", "breathes", "walking"))
    instruments = entry.mapping("instruments", entry.part("instruments"), PITCHED_ROLES)
    for role in PITCHED_ROLES:
        if isinstance(instruments[role], bool) or not isinstance(instruments[role], int) \
                or not 0 <= instruments[role] <= 127:
            entry.fail("instruments", f"{role}: a GM program 0-127")
    preset = entry.part("render_preset")
    if (preset is None and listed) or not (preset is None or isinstance(preset, str)):
        entry.fail("render_preset", "the name of its FX preset in configs/render")
    musicgen = entry.part("musicgen_text")
    if not isinstance(musicgen, str) or not musicgen.strip():
        entry.fail("musicgen_text", "the words MusicGen is asked for the genre with")
    kick_cover = loops.get("kick_cover")
    return Genre(
        name=name,
        words=entry.words("words"),
        related=entry.words("related"),
        neighbours=entry.words("neighbours"),
        tempo=Tempo(entry.number("tempo default", tempo["default"], 1, 300), bpm_range),
        key_mode=entry.choice("key_mode", entry.part("key_mode"), KEY_MODES),
        loop=entry.choice("loop", entry.part("loop"), LOOP_CHOICES),
        density=entry.choice("density", entry.part("density"), DENSITIES),
        harmony=GenreHarmony(tuple((str(s), float(entry.number("harmony share", w, 0, 1)))
                                   for s, w in sources.items()),
                             entry.choice("harmony voicing", harmony["voicing"], VOICINGS)),
        form=FormDefault(form.get("billboard_style"), convention,
                         entry.choice("form into_section", form.get("into_section", "fill"), INTO_SECTION),
                         entry.choice("form downbeat", form.get("downbeat", "crash"), DOWNBEATS)),
        groove=GrooveDefault(groove["template"], tuple(groove["donors"]),
                             float(entry.number("groove swing", groove["swing"], 50, 75))),
        loops=GenreStyle(
            int(entry.choice("loops drum_period_bars", loops["drum_period_bars"], (1, 2))),
            float(entry.number("loops kick_lock", loops["kick_lock"], 0, 1)),
            None if kick_cover is None else float(entry.number("loops kick_cover", kick_cover, 0, 1)),
            entry.flag("loops fills", loops.get("fills", True)),
            float(entry.number("loops breathes", loops.get("breathes", 0.5), 0, 1)),
            entry.flag("loops walking", loops.get("walking", False)),
        ),
        instruments={role: int(instruments[role]) for role in PITCHED_ROLES},
        render_preset=preset,
        musicgen_text=musicgen,
        reference=_reference(entry, listed),
        corpus=_corpus(entry, listed),
    )


@dataclass(frozen=True)
class GenreTable:
    genres: dict[str, Genre]  # the listed genres, in listing order
    unlabelled: Genre  # the parts of material without a genre label
    path: Path

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.genres)

    def entry(self, name: str) -> Genre:
        """A listed genre's entry, or the label-free material's for UNLABELLED_GENRE."""
        if name == UNLABELLED_GENRE:
            return self.unlabelled
        try:
            return self.genres[name]
        except KeyError:
            raise GenreError(f"genre {name!r} is not in the genre table {self.path}; "
                             f"genres: {', '.join(self.genres)}") from None


def load_genre_table(path: Path = GENRES_PATH) -> GenreTable:
    """The table in `path`, checked: every part of every entry, and every genre an entry
    names (neighbours, donors) listed."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as problem:
        raise GenreError(f"{path}: cannot read the genre table ({str(problem).splitlines()[0]})") from problem
    if not isinstance(data, dict) or not isinstance(data.get("genres"), dict) or not data["genres"] \
            or "unlabelled" not in data or set(data) - {"genres", "unlabelled"}:
        raise GenreError(f"{path}: the genre table is a mapping with 'genres' (name -> entry) and 'unlabelled'")
    genres = {str(name): _genre(str(name), entry, path, listed=True) for name, entry in data["genres"].items()}
    if UNLABELLED_GENRE in genres:
        raise GenreError(f"{path}: {UNLABELLED_GENRE!r} names material without a genre label, not a genre")
    unlabelled = _genre(UNLABELLED_GENRE, data["unlabelled"], path, listed=False)
    for genre in genres.values():
        for part, named in (("neighbours", genre.neighbours), ("groove donors", genre.groove.donors),
                            ("corpus fill_donors", genre.corpus.fill_donors if genre.corpus else ())):
            unknown = [n for n in named if n not in genres]
            if unknown:
                raise GenreError(f"genre {genre.name!r}, {part}: {', '.join(unknown)} not in the table ({path})")
    words: dict[str, str] = {}
    for genre in genres.values():
        for word in (*genre.words, *genre.related):
            if word in words and words[word] != genre.name:
                raise GenreError(f"genre {genre.name!r}, words: {word!r} already names {words[word]!r} ({path})")
            words[word] = genre.name
    return GenreTable(genres, unlabelled, path)


@cache
def genre_table() -> GenreTable:
    """The shipped table (configs/genres.yaml), read once."""
    return load_genre_table()


def genre_entry(name: str) -> Genre:
    """Everything the shipped table says about genre `name` (or the label-free material)."""
    return genre_table().entry(name)


# ----------------------------------------------------------------------------- data files

PRESETS_DIR = CONFIG_DIR / "render"


def _json_keys(path: Path, *keys: str) -> set[str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return set()
    for key in keys:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return set(data) if isinstance(data, dict) else set()


def missing_data(genre: Genre, *, grooves: Path, progressions: Path, forms: Path, presets: Path = PRESETS_DIR
                 ) -> list[str]:
    """What `genre`'s entry names that its data files lack, one line each naming the genre,
    the part and the file (empty when the genre is complete). The files are given by the
    modules that own them (symbolic.groove.GROOVES_PATH, symbolic.harmony.TABLE_PATH,
    symbolic.form.FORMS_PATH): this module sits below them and knows no paths of theirs."""
    out = []
    if genre.groove.template not in _json_keys(grooves, "templates"):
        out.append(f"genre {genre.name!r}, groove: no template {genre.groove.template!r} in {grooves}")
    sources = _json_keys(progressions, "sources")
    out += [f"genre {genre.name!r}, harmony: no source {s!r} in {progressions}"
            for s, _ in genre.harmony.sources if s not in sources]
    style = genre.form.billboard_style
    if style is not None and style not in _json_keys(forms, "styles"):
        out.append(f"genre {genre.name!r}, form: no Billboard style {style!r} in {forms}")
    if genre.render_preset is not None and not (presets / f"{genre.render_preset}.yaml").is_file():
        out.append(f"genre {genre.name!r}, render_preset: no {presets / (genre.render_preset + '.yaml')}")
    return out
