"""Free-text prompt -> `Conditions`, the frozen description of what to compose.

Flags override the prompt; validation lives here so the CLI and the service give the
same messages.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.music.genres import (  # DENSITIES and LOOP_CHOICES: defined once, there, for the table's checks
    DENSITIES,
    LOOP_CHOICES,
    UNLABELLED_GENRE,
    genre_entry,
    genre_table,
)
from stemforge.symbolic.music.keys import Key, parse_key

ROLES: tuple[str, ...] = ("drums", "bass", "melody")

# Every genre and its parts live in one table (configs/genres.yaml, read by symbolic/music/genres.py);
# these are its views by part, named as the rest of the code and the tests know them.
_TABLE = genre_table()
# Canonical genre ids, in the order producers see them listed.
GENRES: tuple[str, ...] = _TABLE.names
# Phrases as producers type them -> canonical id. Longest phrases are matched first.
GENRE_SYNONYMS: dict[str, str] = {word: g.name for g in _TABLE.genres.values() for word in g.words}
# Genres producers type that stemforge does not list: composed as the closest listed genre,
# and the run says so (a synonym above maps silently; these are different music).
RELATED_GENRES: dict[str, str] = {word: g.name for g in _TABLE.genres.values() for word in g.related}
# Tempo a genre gets when neither prompt nor flag names one.
GENRE_DEFAULT_BPM: dict[str, float] = {g.name: g.tempo.default for g in _TABLE.genres.values()}
# Where a model does not know a genre, the closest ones it may know, best first.
GENRE_NEIGHBOURS: dict[str, tuple[str, ...]] = {g.name: g.neighbours for g in _TABLE.genres.values()}

DENSITY_WORDS: dict[str, str] = {
    "sparse": "sparse", "minimal": "sparse", "chill": "sparse", "laid back": "sparse",
    "laid-back": "sparse", "mellow": "sparse", "calm": "sparse", "slow": "sparse",
    "relaxed": "sparse", "simple": "sparse", "soft": "sparse",
    "busy": "busy", "hard": "busy", "energetic": "busy", "driving": "busy", "dense": "busy",
    "intense": "busy", "aggressive": "busy", "fast": "busy", "complex": "busy", "heavy": "busy",
}
MOOD_WORDS: tuple[str, ...] = (
    "dark", "bright", "happy", "sad", "dreamy", "dusty", "warm", "mellow", "chill", "hard",
    "energetic", "melancholic", "uplifting", "groovy", "moody", "nostalgic", "aggressive",
)

MIN_BPM, MAX_BPM = 1.0, 300.0  # inclusive: what the docs, the flags and the API say
DEFAULT_BARS = 8
MAX_BARS = 1024  # the longest piece any front end takes (the model's own reach is usually far shorter)
DEVELOPING_LOOP = 8  # A A' phrases (B A'' past 8 bars): every genre's default `loop` in configs/genres.yaml
# The structure a genre gets when neither prompt nor flag names one: phrases that develop
# (call and response, a varied repeat, a contrasting B in 16 bars) over a groove that stays;
# an exact loop is one `--loop 1|2|4` away, through-composed lines one `--loop off` away.
GENRE_DEFAULT_LOOP: dict[str, int] = {g.name: g.loop for g in _TABLE.genres.values()}
# "2-bar loop", "loop of 4 bars", "8 bar loops"; "no loop" / "through-composed" switch it off
_LOOP_PATTERN = r"\b([1248])\s*-?\s*bars?\s*loops?\b|\bloops?\s*(?:of\s*)?([1248])\s*-?\s*bars?\b"
_NO_LOOP_PATTERN = r"\b(?:no\s*loops?|through[\s-]*composed|loop\s*off)\b"


MAX_SWING_PERCENT = 75.0  # swing beyond a dotted-8th feel stops being swing
MAX_SEED = 2**63 - 1  # what numpy and torch generators take without wrapping


def parse_loop(value: str | int) -> int:
    """A loop length as typed: 1, 2, 4 (exact loops), 8 (phrases that develop), or 'off' (0)."""
    text = str(value).strip().lower()
    if text in ("off", "none", "0"):
        return 0
    if text not in ("1", "2", "4", "8"):
        raise ConditionError(f"--loop: {value} is not a loop length; use 1, 2, 4, 8 or off", field="loop")
    return int(text)


@dataclass(frozen=True)
class Conditions:
    """What to compose. The exact bpm written to MIDI and WAV always comes from here."""

    prompt: str = ""
    genre: str = "lofi"
    bpm: float = 80.0
    key: str = "A minor"
    bars: int = DEFAULT_BARS
    density: str = "normal"
    moods: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0
    loop: int = 8  # 8: phrases that develop; 1, 2, 4: an exact loop of that many bars; 0: through-composed
    chords: str = ""  # the chord progression as symbols, bars separated by "|"; "" = none
    form: str = ""  # sections as 'intro:4 verse:8 ...' (symbolic.form); "" = one piece (a loop)

    @property
    def key_obj(self) -> Key:
        return parse_key(self.key)

    @property
    def seconds_per_beat(self) -> float:
        return 60.0 / self.bpm

    @property
    def bpm_label(self) -> str:
        """'80' for 80.0, '87.5' for 87.5: what file names carry."""
        return f"{self.bpm:g}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["moods"] = list(self.moods)
        if not self.form:  # a loop's run.json reads as it did before forms existed
            del out["form"]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Conditions:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ConditionError(f"conditions: unknown field(s) {sorted(unknown)}")
        values = dict(data)
        if "moods" in values:
            values["moods"] = tuple(values["moods"])
        return validate(cls(**values))


def _check_genre(genre: str) -> None:
    if genre not in GENRES and genre != UNLABELLED_GENRE:
        raise ConditionError(
            f"genre: unknown genre {genre!r}; choose one of {', '.join(GENRES)} (or none: a model's "
            "material without a genre label)", field="genre"
        )


def validate(conditions: Conditions, max_bars: int | None = None) -> Conditions:
    """Raise ConditionError naming the field when a value cannot be composed."""
    _check_genre(conditions.genre)
    if not (MIN_BPM <= conditions.bpm <= MAX_BPM):
        raise ConditionError(f"bpm: {conditions.bpm:g} is out of range; use 1-300", field="bpm")
    if conditions.bars <= 0:
        raise ConditionError(f"bars: {conditions.bars} must be at least 1", field="bars")
    if conditions.bars > MAX_BARS:  # a hand-edited run.json asked for 100000 (7.7 TiB of audio)
        raise ConditionError(f"bars: {conditions.bars} is more than stemforge composes or renders; ask for at most "
                             f"{MAX_BARS}", field="bars")
    if not 0 <= conditions.seed <= MAX_SEED:
        raise ConditionError(f"seed: {conditions.seed} is out of range; use 0-{MAX_SEED} (63 bits)", field="seed")
    if max_bars is not None and conditions.bars > max_bars and not conditions.form:
        raise ConditionError(
            f"bars: {conditions.bars} is beyond this model's reach of {max_bars} bars in one piece; "
            f"ask for at most {max_bars}, or a form (--form, up to 64 bars)", field="bars"
        )
    if conditions.density not in DENSITIES:
        raise ConditionError(f"density: {conditions.density!r} is not one of {DENSITIES}", field="density")
    parse_key(conditions.key)
    if conditions.loop not in LOOP_CHOICES:
        raise ConditionError(f"loop: {conditions.loop} is not a loop length; use 1, 2, 4, 8 or off", field="loop")
    if conditions.chords:
        progression_of(conditions)
    return conditions


def progression_of(conditions: Conditions):
    """The `Progression` of a piece's `chords` (None when it has none)."""
    from stemforge.symbolic.music.harmony import parse_progression

    if not conditions.chords:
        return None
    try:
        return parse_progression(conditions.chords, conditions.key_obj)
    except ValueError as error:
        raise ConditionError(str(error), field="chords") from error


def _find_phrase(table: dict[str, str], text: str) -> str | None:
    lowered = f" {text.lower()} "
    for phrase in sorted(table, key=len, reverse=True):
        if re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", lowered):
            return phrase
    return None


def match_genre(text: str) -> str | None:
    """The canonical genre named in free text, or None. Longest synonym wins; of two of equal
    length, the genre listed first in configs/genres.yaml."""
    phrase = _find_phrase(GENRE_SYNONYMS, text)
    return GENRE_SYNONYMS[phrase] if phrase else None


def match_related_genre(text: str) -> tuple[str, str] | None:
    """(what was typed, the listed genre composed instead) for a genre stemforge does not list."""
    phrase = _find_phrase(RELATED_GENRES, text)
    return (phrase, RELATED_GENRES[phrase]) if phrase else None


_BPM_PATTERNS = (
    r"(\d+(?:\.\d+)?)\s*-?\s*bpm\b",
    r"\bbpm\s*[:=]?\s*(\d+(?:\.\d+)?)",
    r"\b(?:at|@|tempo)\s*(\d+(?:\.\d+)?)\b",
)
_KEY_PATTERN = (
    r"(?:\bin\s+|\bkey\s*(?:of\s*)?[:=]?\s*)"
    r"([a-g](?:#|b|♯|♭|\s*sharp|\s*flat)?\s*(?:major|maj|minor|min|m)?)(?![a-z#])"
)
_BARE_KEY_PATTERN = r"(?<![\w#])([a-g](?:#|b)?(?:m|min|maj|minor|major))(?![\w#])"
# "in H major", "key of X minor": a key asked for with a tonic that is not one
_NOT_A_KEY_PATTERN = r"(?:\bin|\bkey(?: of)?)\s?[:=]?\s?([h-z][#b]?\s?(?:major|minor|maj|min))\b"


def parse_prompt(prompt: str) -> dict:
    """Pull genre, bpm, key, bars, density and moods out of free text.

    Returns only what the prompt names; `build_conditions` fills the rest.
    """
    from stemforge.symbolic.music.harmony import progression_in_prompt

    text = " ".join(prompt.split())  # one space per gap keeps every pattern below linear in the prompt
    found: dict = {}
    chords = progression_in_prompt(text)
    if chords:  # case matters in chords (vi vs VI); and "Am F C G" must not read as a key
        found["chords"] = chords
        # the finder normalises separators ("Am, F, C" -> "Am F C"): cut the run as typed
        typed = r"[\s,|:;-]*".join(re.escape(token) for token in chords.split())
        text = re.sub(typed, " ", text, count=1)
    lowered = text.lower()
    genre = match_genre(lowered)
    if genre:
        found["genre"] = genre
    elif related := match_related_genre(lowered):
        found["genre"], found["genre_typed"] = related[1], related[0]
    for pattern in _BPM_PATTERNS:
        match = re.search(pattern, lowered)
        if match:
            found["bpm"] = float(match.group(1))
            break
    else:  # a bare tempo-sized number ("lofi 80", "lofi 87.5"), not a bar count
        match = re.search(r"(?<![\w.#])(\d{2,3}(?:\.\d+)?)(?![\w.]|\s*-?\s*bars?\b)", lowered)
        if match and 30 <= float(match.group(1)) <= 300:
            found["bpm"] = float(match.group(1))
    match = re.search(_KEY_PATTERN, lowered)
    if match is None:
        match = re.search(_BARE_KEY_PATTERN, lowered)
    if match:
        found["key"] = parse_key(match.group(1)).name
    loop_match = re.search(_LOOP_PATTERN, lowered)
    if loop_match:
        found["loop"] = int(loop_match.group(1) or loop_match.group(2))
    elif re.search(_NO_LOOP_PATTERN, lowered):
        found["loop"] = 0
    without_loop = re.sub(_LOOP_PATTERN, " ", lowered)
    match = re.search(r"(\d+)\s*-?\s*bars?\b", without_loop)
    if match:
        found["bars"] = int(match.group(1))
    for phrase in sorted(DENSITY_WORDS, key=len, reverse=True):
        if re.search(rf"\b{re.escape(phrase)}\b", lowered):
            found["density"] = DENSITY_WORDS[phrase]
            break
    moods = tuple(w for w in MOOD_WORDS if re.search(rf"\b{w}\b", lowered))
    if moods:
        found["moods"] = moods
    return found


def default_key(genre: str, seed: int) -> str:
    """A deterministic key when none is asked for: in the genre's mode, varied by seed."""
    mode = genre_entry(genre).key_mode
    tonics = (9, 0, 2, 4, 5, 7, 10, 3) if mode == "minor" else (0, 7, 2, 5, 9, 4, 10, 3)
    return Key(tonics[seed % len(tonics)], mode).name


def build_conditions(
    prompt: str = "",
    *,
    genre: str | None = None,
    bpm: float | None = None,
    key: str | None = None,
    bars: int | None = None,
    density: str | None = None,
    seed: int = 0,
    max_bars: int | None = None,
    notes: list[str] | None = None,
    base: Conditions | None = None,
    loop: int | None = None,
    chords: str | None = None,
) -> Conditions:
    """`base` (an earlier run's conditions) first, then what the prompt names, then flags;
    validated. A genre stemforge does not list but knows a neighbour of is composed as that
    neighbour, with a line in `notes`. `loop` 0 is off; no chords anywhere gives the genre's
    default progression for the key, drawn by the seed."""
    inherited = {} if base is None else {
        "genre": base.genre, "bpm": base.bpm, "key": base.key, "bars": base.bars, "density": base.density,
        "moods": base.moods, "loop": base.loop, "chords": base.chords,
    }
    prompted = parse_prompt(prompt)
    parsed = {**inherited, **prompted}
    if genre is not None and genre.strip().lower() in NO_GENRE_WORDS:
        parsed.pop("genre_typed", None)
        parsed["genre"] = UNLABELLED_GENRE
    elif genre is not None:
        parsed.pop("genre_typed", None)
        canonical = match_genre(genre)
        related = None if canonical else match_related_genre(genre)
        parsed["genre"] = canonical or (related[1] if related else genre.strip().lower())
        if related:
            parsed["genre_typed"] = related[0]
    if "genre_typed" in parsed and notes is not None:
        notes.append(f"genre '{parsed['genre_typed']}' is not one stemforge lists; composing it as the closest "
                     f"listed genre, '{parsed['genre']}'")
    chosen_genre = parsed.get("genre", "lofi")
    if notes is not None and prompt.strip() and genre is None and "genre" not in parsed:
        shown = " ".join(prompt.split())[:60]
        notes.append(f"prompt: no genre in {shown!r}; composing {chosen_genre} (genres: {', '.join(GENRES)})")
    if key is not None:
        parsed["key"] = parse_key(key).name
    chord_text = chords if chords is not None else parsed.get("chords", "")
    named_chords = chords is not None or "chords" in prompted
    if named_chords and key is None and "key" not in prompted:
        implied = key_of_chords(chord_text)  # "Am F C G" is in A minor unless a key is named
        if implied is not None:
            parsed["key"] = implied.name
    if notes is not None and key is None and "key" not in prompted:
        not_a_key = re.search(_NOT_A_KEY_PATTERN, " ".join(prompt.split()).lower())
        if not_a_key:
            notes.append(f"prompt: {not_a_key.group(1)!r} is not a key (tonics are A to G); using the "
                         f"{'chords' if named_chords else 'genre'}'s key")
    _check_genre(chosen_genre)  # before its table entry gives the defaults below
    conditions = Conditions(
        prompt=prompt or (base.prompt if base else ""),
        genre=chosen_genre,
        bpm=float(bpm) if bpm is not None else float(parsed.get("bpm", genre_entry(chosen_genre).tempo.default)),
        key=parsed.get("key") or default_key(chosen_genre, seed),
        bars=int(bars) if bars is not None else int(parsed.get("bars", DEFAULT_BARS)),
        density=density if density is not None else parsed.get("density", genre_entry(chosen_genre).density),
        moods=parsed.get("moods", ()),
        seed=int(seed),
        loop=loop if loop is not None else int(parsed.get("loop", genre_entry(chosen_genre).loop)),
        chords=chord_text,
    )
    if base is not None and (conditions.key, conditions.genre) != (base.key, base.genre) and not named_chords:
        conditions = replace(conditions, chords="")  # the earlier chords belong to the earlier key
    if not conditions.chords:
        conditions = replace(conditions, chords=default_chords(conditions))
    conditions = replace(validate(conditions, max_bars), chords=progression_of(conditions).text())
    return conditions


def key_of_chords(text: str) -> Key | None:
    """The key chord symbols imply (None for roman numerals, which take the key given): of
    the keys whose scale holds the most of the progression (by length), the one whose tonic
    chord opens it, else closes it, else appears in it; the Krumhansl-Kessler fit of the
    chord tones breaks what ties remain. "Am F C G" is in A minor, "Dm G C" in C major."""
    from stemforge.symbolic.music.harmony import chord_tones, parse_progression

    try:
        in_c, in_a = parse_progression(text, Key(0, "major")), parse_progression(text, Key(9, "minor"))
    except ValueError:
        return None
    if in_c.chords != in_a.chords:
        return None
    chords, beats = in_c.chords, in_c.beats
    weights = np.zeros(12)
    for chord, length in zip(chords, beats):
        for pitch_class in chord_tones(chord):
            weights[pitch_class] += length

    def is_tonic(chord, key: Key) -> bool:
        return chord.root == key.tonic and (chord.third == 3) == (key.mode == "minor")

    def fit(key: Key) -> tuple:
        scale = key.scale_pitch_classes
        diatonic = sum(length for chord, length in zip(chords, beats)
                       if {chord.root, (chord.root + chord.third) % 12, (chord.root + chord.fifth) % 12} <= scale)
        profile = _MAJOR_PROFILE if key.mode == "major" else _MINOR_PROFILE
        correlation = float(np.corrcoef(np.roll(weights, -key.tonic), profile)[0, 1])
        return (diatonic, is_tonic(chords[0], key), is_tonic(chords[-1], key),
                any(is_tonic(c, key) for c in chords), correlation)

    return max((Key(t, m) for m in ("major", "minor") for t in range(12)), key=fit)


# Krumhansl-Kessler key profiles (probe-tone ratings, C = index 0).
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def default_chords(conditions: Conditions) -> str:
    """The genre's default progression in the piece's key, drawn by the seed: one whose
    cycle fits the loop (a 2-bar loop gets a 1- or 2-bar progression) and, where the draws
    allow, that starts on the tonic chord, so the loop states its key before it travels."""
    from stemforge.symbolic.music.harmony import default_progression

    key = conditions.key_obj
    fallback = None
    for attempt in range(64):
        progression = default_progression(conditions.genre, key, conditions.seed + 7919 * attempt,
                                          conditions.loop)
        if conditions.loop and conditions.loop % progression.cycle_bars:
            continue
        if progression.chords[0].root == key.tonic:
            return progression.text()
        fallback = fallback or progression
    return (fallback or default_progression(conditions.genre, key, conditions.seed)).text()


# `--genre none` (or these words) asks for that material: a model trained without labels
NO_GENRE_WORDS: tuple[str, ...] = ("none", "unknown", "unlabelled", "unlabeled", "no genre", "any")
# A genre token trained on fewer windows than this, and on less than MIN_GENRE_SHARE of the
# model's windows, does not steer a piece on its own: the run composes it as a neighbour or
# the model's label-free material, saying so, or refuses, naming the count (one file of 17
# windows among 3,077 once stood for 6 of 15 genres)
MIN_GENRE_WINDOWS = 32
MIN_GENRE_SHARE = 0.05


def nearest_known_genre(genre: str, known: tuple[str, ...] | list[str],
                        windows: dict[str, int] | None = None) -> str:
    """The closest genre a model was trained on (the genre itself when known): a listed
    neighbour, else the model's unlabelled material (a model trained on an unlabelled folder
    answers every prompt from it), else the genre it knows best. With `windows` (training
    windows per genre), a genre of fewer than MIN_GENRE_WINDOWS counts as unknown here."""
    return model_genre_for(genre, known, windows)[0]


def model_genre_for(genre: str, known: tuple[str, ...] | list[str],
                    windows: dict[str, int] | None = None) -> tuple[str, str | None]:
    """The genre token a model composes `genre` with, and a line saying why when it is not
    the genre itself. A genre the model holds too few training windows of (`windows`,
    MIN_GENRE_WINDOWS, MIN_GENRE_SHARE) never steers a piece silently: it is composed as a neighbour or the
    label-free material with a line saying so, or refused with its count."""
    total = sum((windows or {}).values())
    enough = min(MIN_GENRE_WINDOWS, MIN_GENRE_SHARE * total)

    def usable(name: str) -> bool:
        return name in known and (windows is None or name not in windows or windows[name] >= enough)

    def thin(name: str) -> str:
        return (f"genre '{name}' has only {(windows or {}).get(name, 0)} training windows in this model (of {total}; "
                f"a genre needs {max(1, math.ceil(enough))} to steer a piece)")

    if usable(genre):
        return genre, None
    if not known:
        raise ConditionError("genre: the model knows no genres", field="genre")
    if genre == UNLABELLED_GENRE:
        if genre in known:
            raise ConditionError(f"genre: {thin(genre)}; name one of its genres ({', '.join(known)})", field="genre")
        raise ConditionError(f"genre: this model has no material without a genre label; name one of its genres "
                             f"({', '.join(known)})", field="genre")
    why = thin(genre) if genre in known else f"genre '{genre}' is not in this model"
    for neighbour in genre_entry(genre).neighbours:
        if usable(neighbour):
            return neighbour, f"{why}; using the nearest known genre '{neighbour}'"
        if neighbour in known:  # passed over: say so, the user may have expected it
            why += f" and its neighbour {thin(neighbour).removeprefix('genre ')}"
    if usable(UNLABELLED_GENRE):
        return UNLABELLED_GENRE, (f"{why}; composing from its material without a genre label (label files by "
                                  "folder or metadata CSV when preparing to steer the genre)")
    if genre in known:
        with_material = [g for g in known if usable(g)]
        raise ConditionError(f"genre: {thin(genre)}; train with more files of it, or ask for one with material "
                             f"({', '.join(with_material) or 'none'})", field="genre")
    best = max((g for g in known if usable(g)), key=lambda g: (windows or {}).get(g, 0), default=sorted(known)[0])
    return best, f"{why}; using the nearest known genre '{best}'"
