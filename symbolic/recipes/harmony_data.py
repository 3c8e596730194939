"""Readers of the real harmony data sets: the McGill Billboard chord annotations and the
Weimar Jazz Database's beat tracks. Plain readers returning typed dataclasses; what is
counted from them (progressions per style, see `progressions.build_table`) lives in progressions.py.

- Billboard (`../shared/data/billboard`): "McGill Billboard Project, Burgoyne, Wild and
  Fujinaga 2011", CC0 1.0. 890 annotated chart entries (742 distinct songs), every bar's
  chords and the song's sections, no genre: a style comes from the artist (ARTIST_STYLES).
- WJD (`../shared/data/wjd`): "Weimar Jazz Database (Pfleiderer, Frieler, Abesser,
  Zaddach, Burkhart 2017), via jazzodata (MIT)"; upstream ODbL 1.0. 456 solos with the
  chord, the local key and an estimated bass pitch on every beat. The .rda files are read
  with pyreadr (pandas), imported only when WJD is read.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from stemforge.symbolic.music.harmony import _DEGREE, BILLBOARD_STYLES, Chord, make_chord
from stemforge.symbolic.music.keys import PITCH_CLASSES, Key

BILLBOARD_CREDIT = "McGill Billboard Project, Burgoyne, Wild and Fujinaga 2011 (CC0)"
WJD_CREDIT = ("Weimar Jazz Database (Pfleiderer, Frieler, Abesser, Zaddach, Burkhart 2017), "
              "via jazzodata (MIT)")
STYLES = BILLBOARD_STYLES


class HarmonyDataError(ValueError):
    """A data file that cannot be read; the message names the file (and line) and what is wrong."""


def _pitch_class(name: str) -> int | None:
    return PITCH_CLASSES.get(name.lower())


# ------------------------------------------------------------------------ Harte labels

# Harte shorthands (Harte et al. 2005, as the Billboard files write them) -> their degrees.
_SHORTHAND: dict[str, tuple[str, ...]] = {
    "maj": ("3", "5"), "min": ("b3", "5"), "dim": ("b3", "b5"), "aug": ("3", "#5"),
    "maj7": ("3", "5", "7"), "min7": ("b3", "5", "b7"), "7": ("3", "5", "b7"), "dim7": ("b3", "b5", "bb7"),
    "hdim7": ("b3", "b5", "b7"), "minmaj7": ("b3", "5", "7"), "maj6": ("3", "5", "6"), "min6": ("b3", "5", "6"),
    "9": ("3", "5", "b7", "9"), "maj9": ("3", "5", "7", "9"), "min9": ("b3", "5", "b7", "9"),
    "11": ("3", "5", "b7", "9", "11"), "min11": ("b3", "5", "b7", "9", "11"),
    "13": ("3", "5", "b7", "9", "11", "13"), "maj13": ("3", "5", "7", "9", "13"),
    "min13": ("b3", "5", "b7", "9", "11", "13"), "sus2": ("2", "5"), "sus4": ("4", "5"), "5": ("5",), "1": (),
}
_BASS_DEGREE = {**_DEGREE, "9": 2, "b9": 1, "#9": 3, "11": 5, "#11": 6, "13": 9, "b13": 8}
_HARTE_LABEL = re.compile(r"([A-G][b#]*):([^(/]*)(?:\(([^)]*)\))?(?:/(.+))?")


def _quality_of(degrees: set[str]) -> tuple[str | None, bool]:
    """Degrees -> (QUALITIES name, has a 7th) or (None, has a 7th) for a chord without a
    third and a 4th or 2nd (a power chord, C:5, or a bare root, C:1)."""
    seventh = "b7" in degrees or "7" in degrees or "bb7" in degrees
    sixth = "6" in degrees and not seventh
    fifth = 6 if "b5" in degrees and "5" not in degrees else 8 if "#5" in degrees and "5" not in degrees else 7
    if "3" in degrees:
        if fifth == 8:
            return ("aug7" if "b7" in degrees else "aug"), "b7" in degrees
        if "b7" in degrees:
            return "7", True
        return ("maj7", True) if "7" in degrees else ("maj6", True) if sixth else ("maj", False)
    if "b3" in degrees:
        if fifth == 6:
            return ("hdim7", True) if "b7" in degrees else ("dim7", True) if "bb7" in degrees else ("dim", False)
        if "b7" in degrees:
            return "min7", True
        return ("minmaj7", True) if "7" in degrees else ("min6", True) if sixth else ("min", False)
    if "4" in degrees or "11" in degrees:
        return ("7sus4", True) if "b7" in degrees else ("sus4", False)
    if "2" in degrees or "9" in degrees:
        return "sus2", False
    return None, "b7" in degrees


def harte_chord(label: str) -> Chord | None:
    """A Billboard chord label ('A:min', 'C:7(#9)', 'B:sus4(b7,9)', 'F:min/b3', 'Eb:11',
    'C:5', 'G:1') -> Chord; None for 'N', '*' and what is not a Harte label.

    Extensions are voiced as the 7th chord under them (C:9 is C7, D:maj6(9) is D6). A
    chord without a third (a power chord C:5, a bare root G:1) has its fifth (or root) in
    the place of the third: its chord tones are only what sounds, and `progressions.window_label`
    reads it as the key's own triad on that root, as it reads sus chords."""
    match = _HARTE_LABEL.fullmatch(label.strip())
    if not match:
        return None
    root_name, shorthand, added, bass_degree = match.groups()
    root = _pitch_class(root_name)
    if root is None or (shorthand and shorthand not in _SHORTHAND):
        return None
    degrees = set(_SHORTHAND[shorthand] if shorthand else () if added is not None else _SHORTHAND["maj"])
    for degree in (added or "").split(","):
        degree = degree.strip()
        if degree.startswith("*"):
            degrees.discard(degree[1:])
        elif degree:
            degrees.add(degree)
    bass = (root + _BASS_DEGREE.get(bass_degree, 0)) % 12 if bass_degree else root
    quality, has_seventh = _quality_of(degrees)
    if quality is not None:
        return make_chord(root, quality, bass)
    # no third: a power chord (root and fifth) or a bare root
    only = 7 if "5" in degrees else 0
    return Chord(root, only, only, 10, bass, has_seventh)


# -------------------------------------------------------------------------- Billboard


@dataclass(frozen=True)
class BillboardBar:
    """One bar as annotated: its chords in order ('.' repeats expanded: one per written
    token, None for N, '*' and '&pause'), the labels as written, its beats (the song's
    metre, or the bar's own '(2/4)') and the key in force (tonic from the header, mode read
    from the chords, see `_segment_mode`)."""

    chords: tuple[Chord | None, ...]
    labels: tuple[str, ...]
    beats: int
    key: Key

    def beat_chords(self) -> tuple[Chord | None, ...] | None:
        """The chord on each beat, or None where the written tokens do not say it: one token
        fills the bar, two share a 4-beat bar, otherwise there must be one per beat (the
        rule of the corpus's own tools)."""
        if len(self.chords) == 1:
            return self.chords * self.beats
        if len(self.chords) == 2 and self.beats == 4:
            return (self.chords[0],) * 2 + (self.chords[1],) * 2
        return self.chords if len(self.chords) == self.beats else None


@dataclass(frozen=True)
class BillboardSection:
    """A run of bars under one section label: `letter` names its material (A, B, A', Z...;
    '' when a line starts a section without one), `function` its role (intro, verse,
    chorus, bridge, solo, outro...; '' when unnamed)."""

    letter: str
    function: str
    start_seconds: float
    bars: tuple[BillboardBar, ...]


@dataclass(frozen=True)
class BillboardSong:
    song_id: str  # the folder name, '0003'
    title: str
    artist: str
    style: str  # from ARTIST_STYLES, 'pop' for artists not listed
    metre: str  # '4/4', '6/8', ... (the first metre line)
    key: Key  # the key of the first bar (a few songs change tonic: each bar has its own key)
    sections: tuple[BillboardSection, ...]

    @property
    def bars(self) -> tuple[BillboardBar, ...]:
        return tuple(bar for section in self.sections for bar in section.bars)


_MARKERS = {"fadeout", "fade out"}  # words before the bars that are not a section's function
_SECTION_LETTER = re.compile(r"[A-Z]'*")
_METRE = re.compile(r"\(?(\d+)/(\d+)\)?")


def _metre_beats(text: str) -> int | None:
    """Beats in a bar of a metre: 4/4 -> 4, 2/4 -> 2, 6/8 and 12/8 -> 2 and 4 (compound)."""
    match = _METRE.fullmatch(text.strip())
    if not match:
        return None
    top, bottom = int(match.group(1)), int(match.group(2))
    return top // 3 if bottom == 8 and top % 3 == 0 else top


def _segment_mode(tonic: int, chords: list[tuple[Chord, float]]) -> str:
    """Major or minor for a stretch of a song in one tonic, from its (chord, beats): the
    third of its tonic chords, else the third above the tonic that its chords hold longer;
    major on a tie (blues and rock songs mix both thirds over a major tonic chord)."""
    tonic_thirds: Counter = Counter()
    holds: Counter = Counter()
    for chord, beats in chords:
        if chord.root == tonic and chord.third in (3, 4):
            tonic_thirds[chord.third] += beats
        tones = {(chord.root + i) % 12 for i in (0, chord.third, chord.fifth)}
        holds[4] += beats * ((tonic + 4) % 12 in tones)
        holds[3] += beats * ((tonic + 3) % 12 in tones)
    counts = tonic_thirds if tonic_thirds else holds
    return "minor" if counts[3] > counts[4] else "major"


@dataclass
class _RawBar:
    chords: list[Chord | None]
    labels: list[str]
    beats: int
    tonic: int


def _read_bar(text: str, metre_beats: int, tonic: int, where: str) -> _RawBar:
    tokens = text.split()
    beats = metre_beats
    if tokens and tokens[0].startswith("("):
        local = _metre_beats(tokens[0])
        if local is None:
            raise HarmonyDataError(f"{where}: {tokens[0]!r} is not a metre like (2/4)")
        beats, tokens = local, tokens[1:]
    chords: list[Chord | None] = []
    labels: list[str] = []
    for token in tokens:
        if token == ".":
            if not chords:
                raise HarmonyDataError(f"{where}: a bar cannot begin with '.' (it repeats the chord before)")
            chords.append(chords[-1])
            labels.append(labels[-1])
        elif token in ("N", "*", "&pause"):
            chords.append(None)
            labels.append(token)
        else:
            chord = harte_chord(token)
            if chord is None:
                raise HarmonyDataError(f"{where}: {token!r} is not a chord label like A:min or G:7")
            chords.append(chord)
            labels.append(token)
    if not chords:
        raise HarmonyDataError(f"{where}: an empty bar between '|'")
    return _RawBar(chords, labels, beats, tonic)


def read_billboard_song(path: Path, style_of: dict[str, str] | None = None,
                        index_row: dict[str, str] | None = None) -> BillboardSong:
    """One `salami_chords.txt`: headers (# title, # artist, # metre, # tonic; the last two
    may change mid-song), then one line per phrase: 'seconds<TAB>[letter, function,] | chord
    | chord chord | ...|[, xN][, (instrument]'. Title and artist come from the index row
    when given (a few file headers swap them). A HarmonyDataError names the file and line."""
    headers: dict[str, str] = {}
    metre_beats: int | None = None
    tonic: int | None = None
    sections: list[tuple[str, str, float, list[_RawBar]]] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise HarmonyDataError(f"{path}: cannot read ({error})") from error
    for number, line in enumerate(lines, 1):
        where = f"{path}:{number}"
        if line.startswith("#"):
            name, _, value = line[1:].partition(":")
            name, value = name.strip(), value.strip()
            headers.setdefault(name, value)
            if name == "metre":
                metre_beats = _metre_beats(value)
                if metre_beats is None:
                    raise HarmonyDataError(f"{where}: metre {value!r} is not like 4/4")
            elif name == "tonic":
                tonic = _pitch_class(value)
                if tonic is None:
                    raise HarmonyDataError(f"{where}: tonic {value!r} is not a note name like Ab")
            continue
        if not line.strip():
            continue
        seconds_text, tab, body = line.partition("\t")
        try:
            seconds = float(seconds_text)
        except ValueError:
            raise HarmonyDataError(f"{where}: a line starts with its time in seconds and a tab") from None
        if not tab or "|" not in body:
            continue  # silence, end, Z: no bars
        if metre_beats is None or tonic is None:
            raise HarmonyDataError(f"{where}: bars before the '# metre' and '# tonic' headers")
        head, _, rest = body.partition("|")
        bars_text, _, tail = rest.rpartition("|")
        words = [w.strip() for w in head.split(",") if w.strip()]
        letter = words[0] if words and _SECTION_LETTER.fullmatch(words[0]) else ""
        functions = [w for w in words[1 if letter else 0:] if w.lower() not in _MARKERS]
        if letter or functions or not sections:
            sections.append((letter, functions[0] if functions else "", seconds, []))
        repeat = re.search(r"\bx(\d+)\b", tail)
        bars = [_read_bar(text, metre_beats, tonic, where) for text in bars_text.split("|")]
        sections[-1][3].extend(bars * (int(repeat.group(1)) if repeat else 1))
    if "metre" not in headers or "tonic" not in headers:
        raise HarmonyDataError(f"{path}: no '# metre' or '# tonic' header")
    # each stretch in one tonic gets its mode from its own chords
    raw_bars = [bar for *_, bars in sections for bar in bars]
    modes: dict[int, str] = {}
    for segment_tonic in {bar.tonic for bar in raw_bars}:
        weighted = [(c, bar.beats / len(bar.chords)) for bar in raw_bars if bar.tonic == segment_tonic
                    for c in bar.chords if c is not None]
        modes[segment_tonic] = _segment_mode(segment_tonic, weighted)
    built = tuple(
        BillboardSection(letter, function, start, tuple(
            BillboardBar(tuple(b.chords), tuple(b.labels), b.beats, Key(b.tonic, modes[b.tonic])) for b in bars))
        for letter, function, start, bars in sections)
    title = (index_row or {}).get("title") or headers.get("title", "")
    artist = (index_row or {}).get("artist") or headers.get("artist", "")
    first_bars = [section.bars[0] for section in built if section.bars]
    tonic_of_header = _pitch_class(headers["tonic"]) or 0  # read (and checked) with the header
    key = first_bars[0].key if first_bars else Key(tonic_of_header, "major")
    return BillboardSong(path.parent.name, title, artist, style_for(artist, style_of), headers["metre"],
                         key, built)


def read_billboard_index(path: Path) -> dict[str, dict[str, str]]:
    """`billboard-2.0-index.csv` (tab-separated) -> {'0003': {'title', 'artist', 'chart_date'}}
    for the rows that were annotated. The file writes a comma inside a field as a tab
    ('Earth<TAB> Wind & Fire', quoted): written back as ', '."""
    out: dict[str, dict[str, str]] = {}
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t")
        head = next(rows, [])
        if head[:1] != ["id"]:
            raise HarmonyDataError(f"{path}: not the Billboard index (no 'id' column first)")
        for row in rows:
            if len(row) < 8 or not row[4].strip():
                continue
            # id, chart_date, target_rank, actual_rank, title, artist, peak_rank, weeks_on_chart
            title, artist = (re.sub(r"\s*\t\s*", ", ", field).strip() for field in row[4:6])
            out[row[0].zfill(4)] = {"chart_date": row[1], "title": title, "artist": artist}
    return out


def read_billboard(folder: Path, skipped: Counter | None = None, max_songs: int | None = None
                   ) -> list[BillboardSong]:
    """Every song of a Billboard folder (McGill-Billboard/NNNN/salami_chords.txt and, when
    present, billboard-2.0-index.csv), in folder order, each distinct song once (the chart
    sampled a few songs twice: the first annotation is kept); the first `max_songs` files
    only when given. Files that cannot be read are counted in `skipped` with the reason."""
    skipped = Counter() if skipped is None else skipped
    index_path = folder / "billboard-2.0-index.csv"
    index = read_billboard_index(index_path) if index_path.is_file() else {}
    songs: list[BillboardSong] = []
    seen: set[tuple[str, str]] = set()
    for path in sorted((folder / "McGill-Billboard").glob("*/salami_chords.txt"))[:max_songs]:
        try:
            song = read_billboard_song(path, index_row=index.get(path.parent.name))
        except HarmonyDataError as error:
            skipped[f"song: {str(error).split(': ', 1)[-1]}"] += 1
            continue
        identity = (song.title.lower(), normalise_artist(song.artist))
        if identity in seen:
            skipped["song: a second annotation of the same song"] += 1
            continue
        seen.add(identity)
        songs.append(song)
    return songs


# ---------------------------------------------------------------------- artist styles


def normalise_artist(name: str) -> str:
    """'The Rolling Stones' and 'Rolling Stones', 'Earth, Wind & Fire' and 'Earth Wind and
    Fire' -> one key: lower case, '&' as 'and', no leading 'the', punctuation as spaces."""
    text = name.lower().replace("&", " and ")
    text = re.sub(r"^\s*the\s+", "", text)
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


# Billboard artist (normalised) -> the style of their chart hits: 275 of the 417 artists.
# Made by hand: every artist (after normalising names) was read with the titles of their
# songs in the set, and given one of STYLES when the style of those hits is well known (Motown, Stax,
# Atlantic and Philadelphia soul; James Brown, Sly Stone, Kool & the Gang and the P-funk
# sampling rap of the late 1980s as funk; Donna Summer, Gloria Gaynor, the Bee Gees-written
# hits and the 1980s dance acts (hi-NRG, freestyle, synth-pop, Eurodance: the ancestors of
# house) as disco; rock bands from the Stones and Led Zeppelin to 1980s hard rock and new
# wave; Nashville and country-pop as country). Artists whose hits are mainstream pop,
# or who span styles, are left out and count as pop (`style_for`).
_SOUL = """al green, anita baker, ann peebles, aretha franklin, arthur conley, barry white, ben e king,
bertha tillman, bill withers, billy preston, bobby womack, boyz ii men, box tops, brother jack mcduff,
candi staton, carl carlton, chico debarge, clarence carter, color me badd, commodores, contours,
cornelius brothers and sister rose, david ruffin jimmy ruffin, debarge, diana ross, dinah washington,
dramatics, drifters, eddie holland, edwin starr, etta james, fontella bass, four tops, freddie jackson,
gladys knight and the pips, hi five, ike and tina turner, irma thomas, isaac hayes, jacksons, jackie wilson,
jermaine jackson, jimmy ruffin, jimmy smith, lavern baker, little anthony and the imperials, marvin gaye,
marvin gaye kim weston, marvin gaye tammi terrell, martha and the vandellas, minnie riperton, miracles,
moments, natalie cole, o jays, otis redding, rare earth, ray charles, roberta flack,
roberta flack donny hathaway, shirley brown, smokey robinson, solomon burke, staple singers,
stephanie mills, stevie wonder, supremes, switch, teddy pendergrass, temptations, tevin campbell,
tracie spencer, willie mitchell, wilson pickett, aaron neville, righteous brothers"""
_FUNK = """james brown, kool and the gang, rick james, sly and the family stone, meters, wild cherry,
earth wind and fire, isley brothers, dr john, digital underground, rob base, young mc, de la soul,
biz markie"""
_DISCO = """donna summer, gloria gaynor, trammps, village people, weather girls, a taste of honey,
andy gibb, patrick hernandez, peaches and herb, ritchie family, thelma houston, evelyn champagne king,
double exposure, yvonne elliman, snap, stevie b, shannon, baltimora, pet shop boys, yaz, soft cell,
depeche mode, bananarama, milli vanilli, marky mark"""
_ROCK = """rolling stones, led zeppelin, heart, pat benatar, bob seger, billy idol, cheap trick, eric clapton,
j geils band, billy squier, david bowie, aerosmith, alice cooper, bachman turner overdrive, bad company,
badfinger, blue cheer, boston, bruce springsteen, byrds, canned heat, cream, creedence clearwater revival,
doors, doobie brothers, eagles, emerson lake and palmer, fabulous thunderbirds, firehouse, focus, foghat,
grand funk railroad, grateful dead, golden earring, iron butterfly, jefferson starship, jethro tull,
jimi hendrix, judas priest, kinks, kiss, lynyrd skynyrd, metallica, pink floyd, poison, police, queen,
queensryche, reo speedwagon, rick derringer, rush, sammy hagar, santana, steppenwolf, steve miller band,
stray cats, ten years after, who, u2, van halen, whitesnake, yardbirds, zz top, amboy dukes,
allman brothers band, edgar winter, electric prunes, music machine, castaways, blondie, talking heads,
cure, psychedelic furs, simple minds, inxs, beatles, chicago, brownsville station, greg kihn,
greg kihn band, bob dylan, janis joplin, joe cocker, meat loaf, nick gilder, quarterflash,
rick springfield, huey lewis, bonnie raitt, robert palmer, paul revere and the raiders,
max frost and the troopers, music explosion, swingin medallions, animals, youngbloods, sopwith camel,
los lobos, jesus jones, la s, roxy music, power station, robert cray band, urban dance squad,
beastie boys, run d m c, chuck berry, bo diddley, steve winwood, genesis, peter gabriel,
tommy james, rascals, turtles, buckinghams, crosby stills and nash, crosby stills nash"""
_COUNTRY = """kenny rogers, john denver, glen campbell, anne murray, charlie rich, dolly parton, johnny cash,
waylon jennings, willie nelson, buck owens, ray price, roy drusky, marty robbins, johnny horton,
hank snow, flatt and scruggs, donna fargo, dottie west, tanya tucker, juice newton, eddie rabbitt,
ronnie milsap, oak ridge boys, alabama, kendalls, johnny lee, jerry reed, tom t hall, dave dudley,
melba montgomery, freddy fender, jerry jeff walker, kris kristofferson, bobby bare, roger miller,
don gibson, nitty gritty dirt band, pure prairie league, marie osmond, bobbie gentry, billy swan,
floyd cramer, jimmy buffett"""
ARTIST_STYLES: dict[str, str] = {
    normalise_artist(artist): style
    for style, names in (("soul", _SOUL), ("funk", _FUNK), ("disco", _DISCO), ("rock", _ROCK),
                         ("country", _COUNTRY))
    for artist in names.replace("\n", " ").split(",")
}


def style_for(artist: str, table: dict[str, str] | None = None) -> str:
    """The artist's style in ARTIST_STYLES (or `table`), 'pop' when not listed."""
    return (ARTIST_STYLES if table is None else table).get(normalise_artist(artist), "pop")


# ----------------------------------------------------------------------------- WJD

_WJD_CHORD = re.compile(
    r"([A-G][b#]?)(m7b5|-7b5|-|o|\+|sus)?(j7|7|6)?((?:(?:9|11|13)[b#]?)*)(alt)?(?:/([A-G][b#]?))?")
_WJD_QUALITY: dict[tuple[str, str], str] = {
    ("", ""): "maj", ("", "7"): "7", ("", "j7"): "maj7", ("", "6"): "maj6",
    ("-", ""): "min", ("-", "7"): "min7", ("-", "j7"): "minmaj7", ("-", "6"): "min6",
    ("m7b5", ""): "hdim7", ("-7b5", ""): "hdim7", ("o", ""): "dim", ("o", "7"): "dim7",
    ("+", ""): "aug", ("+", "7"): "aug7", ("+", "j7"): "aug",  # no augmented-major-7th quality: its triad
    ("sus", ""): "sus4", ("sus", "7"): "7sus4", ("sus", "j7"): "sus4", ("sus", "6"): "sus4",
}


def parse_wjd_chord(symbol: str) -> Chord | None:
    """A WJD chord symbol -> Chord; None for 'NC' (no chord) and what is not a symbol.

    'Bb6' (6 chord), 'C-7' (minor 7th), 'F7', 'Fj7' (major 7th), 'G7alt', 'Bbo7'
    (diminished 7th), 'C-7b5' and 'Am7b5' (half-diminished), 'Bbsus' (sus4), 'Fsus7913'
    (7sus4 with tensions), 'Ebj7911#', 'F79#' (tensions: the 7th chord under them), 'C-69'
    (minor 6), 'Eb/G' (slash bass)."""
    match = _WJD_CHORD.fullmatch(symbol.strip())
    if not match:
        return None
    root_name, kind, seventh, tensions, alt, bass_name = match.groups()
    root = _pitch_class(root_name)
    kind, seventh = kind or "", seventh or ""
    if kind in ("m7b5", "-7b5") and seventh:
        return None
    if (alt or tensions) and not seventh and kind != "sus":
        seventh = "7" if alt or not tensions.startswith("6") else seventh
    quality = _WJD_QUALITY.get((kind, seventh))
    if quality is None or root is None:
        return None
    bass = _pitch_class(bass_name) if bass_name else None
    return make_chord(root, quality, bass)


_WJD_MODES = {"maj": "major", "min": "minor", "blues": "major", "mix": "major", "dor": "minor"}


def parse_wjd_key(text: str) -> Key | None:
    """'Bb-maj', 'C-min', 'F-blues' (major: blues changes are I7 IV7 V7), 'Ab-mix' (major),
    'D-dor' (minor), 'Ab' (major) -> Key; 'D-chrom' (no tonal centre), '' -> None."""
    tonic_name, _, mode = str(text or "").strip().partition("-")
    tonic = _pitch_class(tonic_name) if tonic_name else None
    if tonic is None or (mode and mode not in _WJD_MODES):
        return None
    return Key(tonic, _WJD_MODES.get(mode, "major"))


@dataclass(frozen=True)
class WjdBar:
    """A 4/4 bar of a solo: per beat the chord (None for NC), the symbol as written, the
    local key (the database's analysis: a ii-V into Eb inside Bb major is in Eb), and the
    bass pitch estimated from the recording (MIDI number; None where missing; expect
    octave errors). `form` is the section label at the downbeat (A1, B1, I1...)."""

    number: int
    form: str
    chorus: int
    chords: tuple[Chord | None, ...]
    symbols: tuple[str, ...]
    local_keys: tuple[Key | None, ...]
    bass: tuple[int | None, ...]


@dataclass(frozen=True)
class WjdSolo:
    melid: int
    performer: str
    title: str
    key: Key | None  # the solo's key from wjd_meta (None: chromatic or blank)
    style: str  # POSTBOP, HARDBOP, SWING, BEBOP, COOL, TRADITIONAL, FUSION, FREE
    rhythm_feel: str  # SWING, TWOBEAT, LATIN, FUNK, BALLAD...
    signature: str
    bars: tuple[WjdBar, ...]  # the solo's 4-beat 4/4 bars in order (pickups and odd bars left out)


def _bass_pitch(value: object) -> int | None:
    try:
        pitch = int(float(str(value)))
    except (TypeError, ValueError):
        return None
    return pitch if 0 < pitch < 128 else None


def read_wjd(folder: Path, skipped: Counter | None = None, max_solos: int | None = None) -> list[WjdSolo]:
    """The 4/4 solos of `wjd_meta.rda` with their bars from `wjd_annotated_beat_tracks.rda`,
    in melid order (the first `max_solos` solos of the meta table only, when given). Solos in other metres are counted in `skipped`; so are bars that are not
    four beats of 4/4 (pickups, a 1/4 bar), which are left out of `bars`."""
    try:
        import pyreadr  # needs pandas; only when WJD is read
    except ImportError as error:
        raise HarmonyDataError("reading WJD needs pyreadr: pip install pyreadr") from error
    skipped = Counter() if skipped is None else skipped
    paths = {name: folder / f"{name}.rda" for name in ("wjd_meta", "wjd_annotated_beat_tracks")}
    frames = {}
    for name, path in paths.items():
        try:
            frames[name] = pyreadr.read_r(str(path))[name]
        except Exception as error:  # pyreadr raises its own errors for missing or bad files
            raise HarmonyDataError(f"{path}: cannot read {name} ({error})") from error
    meta, beats = frames["wjd_meta"], frames["wjd_annotated_beat_tracks"]
    missing = {"melid", "bar", "beat", "signature", "chord", "bass", "form", "chorus_id", "local_key"} \
        - set(beats.columns)
    if missing:
        raise HarmonyDataError(f"{paths['wjd_annotated_beat_tracks']}: no column(s) {sorted(missing)}")
    beats = beats.sort_values(["melid", "bar", "beat"], kind="stable")
    columns = {name: beats[name].tolist() for name in ("melid", "bar", "beat", "signature", "chord", "bass",
                                                        "form", "chorus_id", "local_key")}
    # row ranges of each (solo, bar): plain lists, a pandas groupby per bar takes 20 s
    bar_rows: dict[int, list[tuple[int, int, int]]] = {}
    start = 0
    for row in range(1, len(columns["melid"]) + 1):
        if row == len(columns["melid"]) or (columns["melid"][row], columns["bar"][row]) != \
                (columns["melid"][start], columns["bar"][start]):
            bar_rows.setdefault(int(columns["melid"][start]), []).append((int(columns["bar"][start]), start, row))
            start = row
    solos: list[WjdSolo] = []
    key_cache: dict[str, Key | None] = {}
    chord_cache: dict[str, Chord | None] = {}
    for row in meta.sort_values("melid").iloc[:max_solos].itertuples(index=False):
        melid = int(row.melid)
        signature = str(row.signature or "").strip()
        if signature != "4/4":
            skipped[f"solo: metre {signature or 'unknown'}, not 4/4"] += 1
            continue
        if melid not in bar_rows:
            skipped["solo: no beat track"] += 1
            continue
        bars: list[WjdBar] = []
        for bar_number, lo, hi in bar_rows[melid]:
            signatures = {str(s).strip("' ") for s in columns["signature"][lo:hi]}
            if bar_number < 0 or columns["beat"][lo:hi] != [1, 2, 3, 4] or signatures != {"4/4"}:
                skipped["bar: not four beats of 4/4 (pickup or odd bar)"] += 1
                continue
            symbols = tuple(str(s) for s in columns["chord"][lo:hi])
            for symbol in symbols:
                if symbol not in chord_cache:
                    chord_cache[symbol] = parse_wjd_chord(symbol)
            keys = []
            for text in columns["local_key"][lo:hi]:
                text = "" if text is None or text != text else str(text)  # NaN where there is no chord
                if text not in key_cache:
                    key_cache[text] = parse_wjd_key(text)
                keys.append(key_cache[text])
            bars.append(WjdBar(bar_number, str(columns["form"][lo]), int(columns["chorus_id"][lo]),
                               tuple(chord_cache[s] for s in symbols), symbols, tuple(keys),
                               tuple(_bass_pitch(b) for b in columns["bass"][lo:hi])))
        solos.append(WjdSolo(melid, str(row.performer), str(row.title), parse_wjd_key(str(row.key or "")),
                             str(row.style), str(row.rhythmfeel), signature, tuple(bars)))
    unreadable = sorted(s for s, c in chord_cache.items() if c is None and s != "NC")
    if unreadable:
        skipped[f"chord symbols read as no chord: {' '.join(unreadable[:8])}"] += 1
    return solos
