"""The McGill Billboard chord annotations (`../shared/data/billboard`, CC0): the chords of every
bar and the sections of 890 Hot 100 songs (1958-1991), read into typed dataclasses.

`read_billboard_song` reads one `salami_chords.txt`:

    # title: I Don't mind
    # artist: James Brown
    # metre: 6/8
    # tonic: C
    0.0	silence
    7.3469387e-2	A, intro, | A:min | A:min | C:maj | C:maj |
    22.346394557	B, verse, | A:min . . G:7 | C:maj |, (voice
    43.0	| C:5 | x4

A line holds an optional section letter ("A", "B'") and function ("verse", "chorus"), bars
between `|` (chords in Harte syntax; `.` repeats the previous chord for a beat slot; `N` no
chord; `&pause` a stop; `*` a bar without an annotated chord), an optional repeat `xN`, and
instrument notes after a comma. A bar may carry its own metre, "(2/4) A:maj". Chords inside a
bar share it evenly, slot by slot. Lines without bars (silence, end, Z for noise) are skipped.

There is no genre column: `ARTIST_STYLES` maps artists to a style by hand (the table says
which), for the artists with the most songs and the ones whose style is unmistakable; the
rest have no style. Imports nothing from `eval/`, so the corpus builder can use it as it is.
Credit: "McGill Billboard Project, Burgoyne, Wild and Fujinaga 2011".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from stemforge.symbolic.music.harmony import ChordSpan, parse_chord

NO_CHORD = "N"


class BillboardError(ValueError):
    """A Billboard folder or file that cannot be read; the message names it."""


@dataclass(frozen=True)
class BillboardBar:
    chords: tuple[str, ...]  # one Harte label per written slot ("." filled in); "N" where no chord sounds
    beats: int  # the bar's beats: the song's metre, or the bar's own "(2/4)"
    section: str  # the section's letter ("A", "B'"); "" before the first
    function: str  # "intro", "verse", "chorus", ... as annotated; "" when not given


@dataclass
class BillboardSong:
    song_id: str  # the folder name, "0003"
    title: str
    artist: str
    metre: str  # "4/4", "6/8", "12/8", ...
    tonic: str  # "C", "Bb", ...
    bars: list[BillboardBar] = field(default_factory=list)

    @property
    def style(self) -> str | None:
        """The artist's style from `ARTIST_STYLES` (None when the table does not name it)."""
        return artist_style(self.artist)


# Artist -> style, by hand: soul, rnb, funk, disco, rock, pop, hiphop. The artists with three or
# more songs in the set and others whose style is not in doubt; "The" and case are ignored.
ARTIST_STYLES: dict[str, str] = {
    # soul (incl. Motown, Stax, southern soul)
    "otis redding": "soul", "wilson pickett": "soul", "aretha franklin": "soul", "the miracles": "soul",
    "smokey robinson": "soul", "gladys knight & the pips": "soul", "gladys night & the pips": "soul",
    "marvin gaye": "soul", "marvin gaye & tammy terrell": "soul", "marvin gaye & kim weston": "soul",
    "the temptations": "soul", "the supremes": "soul", "four tops": "soul", "al green": "soul",
    "clarence carter": "soul", "solomon burke": "soul", "the staple singers": "soul", "the o'jays": "soul",
    "the dramatics": "soul", "the moments": "soul", "teddy pendergrass": "soul", "bill withers": "soul",
    "roberta flack": "soul", "roberta flack and donny hathaway": "soul", "arthur conley": "soul",
    "ann peebles": "soul", "candi staton": "soul", "shirley brown": "soul", "jimmy ruffin": "soul",
    "edwin starr": "soul", "martha reeves & the vandellas": "soul", "ben e. king": "soul", "the contours": "soul",
    "isaac hayes": "soul", "fontella bass": "soul", "bobby womack": "soul", "jackie wilson": "soul",
    "the righteous brothers": "soul", "irma thomas": "soul", "etta james": "soul", "ray charles": "soul",
    # rnb (1950s rhythm and blues, 1980s-90s contemporary R&B)
    "lavern baker": "rnb", "dinah washington": "rnb", "the drifters": "rnb", "fats domino": "rnb",
    "anita baker": "rnb", "freddie jackson": "rnb", "boyz ii men": "rnb", "color me badd": "rnb",
    "tevin campbell": "rnb", "hi-five": "rnb", "tracie spencer": "rnb", "stephanie mills": "rnb",
    "natalie cole": "rnb", "nathalie cole": "rnb", "jermaine jackson": "rnb", "debarge": "rnb",
    # funk
    "james brown": "funk", "earth, wind & fire": "funk", "earth wind and fire": "funk",
    "kool and the gang": "funk", "rick james": "funk", "the meters": "funk", "wild cherry": "funk",
    "sly and the family stone": "funk", "sly & the family stone": "funk", "the commodores": "funk",
    "commodores": "funk", "the isley brothers": "funk", "rare earth": "funk", "ike & tina turner": "funk",
    "ray parker jr": "funk", "the neville brothers": "funk", "billy preston": "funk",
    # disco
    "donna summer": "disco", "gloria gaynor": "disco", "the trammps": "disco", "village people": "disco",
    "patrick hernandez": "disco", "a taste of honey": "disco", "thelma houston": "disco", "the ritchie family": "disco",
    "peaches and herb": "disco", "andy gibb": "disco", "the weather girls": "disco", "evelyn \"champagne\" king": "disco",
    "double exposure": "disco", "carl carlton": "disco", "barry white": "disco",
    # rock
    "rolling stones": "rock", "the rolling stones": "rock", "eric clapton": "rock", "bob seger": "rock",
    "bob seger & the silver bullet band": "rock", "heart": "rock", "pat benatar": "rock", "pat benetar": "rock",
    "billy idol": "rock", "cheap trick": "rock", "the j. geils band": "rock", "j. geils band": "rock",
    "led zeppelin": "rock", "led zepplin": "rock", "billy squier": "rock", "chicago": "rock", "eagles": "rock",
    "the eagles": "rock", "the who": "rock", "the kinks": "rock", "the doors": "rock", "aerosmith": "rock",
    "van halen": "rock", "zz top": "rock", "bad company": "rock", "boston": "rock", "foghat": "rock",
    "lynyrd skynyrd": "rock", "steppenwolf": "rock", "cream": "rock", "creedence clearwater revival": "rock",
    "bruce springsteen": "rock", "the allman brothers": "rock", "grand funk railroad": "rock", "kiss": "rock",
    "whitesnake": "rock", "poison": "rock", "metallica": "rock", "queensryche": "rock", "judas priest": "rock",
    "firehouse": "rock", "alice cooper": "rock", "bachman-turner overdrive": "rock", "rush": "rock",
    "queen": "rock", "jefferson starship": "rock", "santana": "rock", "the doobie brothers": "rock",
    "steve miller band": "rock", "rick derringer": "rock", "stray cats": "rock", "chuck berry": "rock",
    "the yardbirds": "rock", "ten years after": "rock", "blue cheer": "rock", "iron butterfly": "rock",
    "reo speedwagon": "rock", "sammy hagar": "rock", "rick springfield": "rock", "jethro tull": "rock",
    "pink floyd": "rock", "u2": "rock", "the police": "rock", "police": "rock", "david bowie": "rock",
    "elvis presley": "rock", "the beatles": "rock", "beatles": "rock", "the beatles'": "rock",
    "tina turner": "rock", "genesis": "rock", "talking heads": "rock",
    # pop
    "cyndi lauper": "pop", "brenda lee": "pop", "dion": "pop", "the everly brothers": "pop", "the beach boys": "pop",
    "john denver": "pop", "little river band": "pop", "johnny tillotson": "pop", "cliff richard": "pop",
    "dr. hook": "pop", "elton john": "pop", "billy joel": "pop", "the 5th dimension": "pop",
    "the fifth dimension": "pop", "simon & garfunkel": "pop", "pet shop boys": "pop", "duran duran": "pop",
    "wilson phillips": "pop", "abba": "pop", "madonna": "pop", "michael jackson": "pop", "the jacksons": "pop",
    "stevie wonder": "pop", "phil collins": "pop", "wham!": "pop", "culture club": "pop", "bananarama": "pop",
    "milli vanilli": "pop", "daryl hall & john oates": "pop", "hall & oates": "pop", "hall and oates": "pop",
    "the crystals": "pop", "the ronettes": "pop", "the shirelles": "pop", "the chiffons": "pop", "chiffons": "pop",
    "leslie gore": "pop", "lesley gore": "pop", "neil sedaka": "pop", "paul anka": "pop", "bread": "pop",
    "sonny & cher": "pop", "cher": "pop", "the osmonds": "pop", "bay city rollers": "pop", "roxette": "pop",
    "spandau ballet": "pop", "wang chung": "pop", "a-ha": "pop", "paul mccartney": "pop",
    "paul mccartney & wings": "pop", "the cowsills": "pop", "the turtles": "pop", "the hollies": "pop",
    # hiphop
    "digital underground": "hiphop", "run-d.m.c.": "hiphop", "beastie boys": "hiphop", "de la soul": "hiphop",
    "biz markie": "hiphop", "young mc": "hiphop", "rob base": "hiphop", "marky mark & the funky bunch": "hiphop",
}


def artist_style(artist: str) -> str | None:
    """The style `ARTIST_STYLES` gives the artist (case and surrounding spaces ignored)."""
    return ARTIST_STYLES.get(artist.strip().lower())


_BARS = re.compile(r"\|(.*)\|(?:\s*x(\d+))?")
_METRE = re.compile(r"\((\d+)/(\d+)\)")
_SECTION_LETTER = re.compile(r"[A-Z]'*")


def _bar_chords(text: str, previous: str) -> tuple[tuple[str, ...], int | None, str]:
    """(chord per slot, the bar's own beats or None, the last chord) of one bar's text."""
    beats = None
    metre = _METRE.search(text)
    if metre:
        beats = int(metre.group(1))
        text = _METRE.sub(" ", text)
    slots = []
    for token in text.split():
        if token == ".":
            slots.append(previous)
            continue
        previous = NO_CHORD if token in ("&pause", "*", "X") else token
        slots.append(previous)
    return tuple(slots), beats, previous


def read_billboard_song(path: Path) -> BillboardSong:
    """One `salami_chords.txt` (see the module docstring); the song's id is its folder name."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as error:
        raise BillboardError(f"{path}: cannot be read ({error})") from error
    header: dict[str, str] = {}
    bars: list[BillboardBar] = []
    section = function = ""
    previous = NO_CHORD
    for line in lines:
        if line.startswith("#"):
            name, _, value = line[1:].partition(":")
            header[name.strip()] = value.strip()
            continue
        _, tab, content = line.partition("\t")
        if not tab:
            continue
        match = _BARS.search(content)
        labels = [field.strip() for field in content[:match.start()].split(",")] if match else []
        if labels and _SECTION_LETTER.fullmatch(labels[0]):
            section, function = labels[0], next((f for f in labels[1:] if f), "")
        if not match:
            continue
        beats_per_bar = int(header.get("metre", "4/4").split("/")[0] or 4)
        line_bars = []
        for text in match.group(1).split("|"):
            if not text.strip():
                continue
            chords, beats, previous = _bar_chords(text, previous)
            if chords:
                line_bars.append(BillboardBar(chords, beats or beats_per_bar, section, function))
        bars += line_bars * int(match.group(2) or 1)
    if "metre" not in header or "tonic" not in header:
        raise BillboardError(f"{path}: no '# metre:' or '# tonic:' header; is this a salami_chords.txt?")
    return BillboardSong(path.parent.name, header.get("title", ""), header.get("artist", ""), header["metre"],
                         header["tonic"], bars)


def read_billboard(root: Path) -> list[BillboardSong]:
    """Every song under `root` (the folder holding `McGill-Billboard/NNNN/salami_chords.txt`, or
    that folder itself), in id order."""
    root = Path(root)
    folder = root / "McGill-Billboard" if (root / "McGill-Billboard").is_dir() else root
    paths = sorted(folder.glob("*/salami_chords.txt"))
    if not paths:
        raise BillboardError(f"{folder}: no */salami_chords.txt (see ../shared/data/billboard/README.md)")
    return [read_billboard_song(p) for p in paths]


def bar_chord_spans(bars: list[BillboardBar], ticks_per_beat: int) -> list[ChordSpan]:
    """The bars' chords as `ChordSpan`s from tick 0 (each slot an equal share of its bar,
    consecutive slots of one label merged); no-chord and unreadable slots leave a gap."""
    spans: list[ChordSpan] = []
    tick = 0
    previous = None
    for bar in bars:
        bar_ticks = bar.beats * ticks_per_beat
        for index, label in enumerate(bar.chords):
            start, end = tick + bar_ticks * index // len(bar.chords), tick + bar_ticks * (index + 1) // len(bar.chords)
            chord = parse_chord(label)
            if chord is None:
                previous = None
            elif label == previous and spans and spans[-1].end == start:
                spans[-1] = ChordSpan(spans[-1].start, end, spans[-1].chord)
            else:
                spans.append(ChordSpan(start, end, chord))
                previous = label
        tick += bar_ticks
    return spans
