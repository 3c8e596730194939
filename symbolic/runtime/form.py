"""Song forms: a track as sections (intro, verse, chorus, drop...) of whole bars.

A form is what a producer sketches past a loop: `--form "intro:4 verse:8 chorus:8 verse:8
chorus:8 outro:4"`, prompt words ("full track", "verse and chorus", "with a drop", "32 bars"),
or, when more than 16 bars are asked without one, the genre's default: real song forms of
the McGill Billboard set for the styles it covers (pop, rock, soul, funk; `forms.json`,
rebuilt by `python -m stemforge.symbolic.recipes.forms build`), and the documented conventions of
dance music (intro, build, drop, break, drop, outro) and of the genres Billboard has no
songs of. Sections with the same name share their material (the second chorus is the
first one again, varied); each section kind has its parts, density and the transition into
the next (`SECTION_KINDS`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from stemforge.symbolic.core.errors import ConditionError
from stemforge.symbolic.music.genres import genre_entry, genre_table

FORMS_PATH = Path(__file__).with_name("forms.json")
MAX_FORM_BARS = 64
MAX_SECTION_BARS = 16
MIN_FORM_BARS = 2  # a form of one bar is a loop
FORM_HELP = "write sections as name:bars, e.g. 'intro:4 verse:8 chorus:8 outro:4'"


@dataclass(frozen=True)
class SectionKind:
    """What a kind of section plays: its parts, its density against the piece's, and what
    leads into the next section from its last bar."""

    parts: frozenset[str]
    density_step: int  # -1 sparser, 0 the piece's density, +1 busier
    transition: str  # fill | build | dropout | none: what its last bar does before the next section


ALL_PARTS = frozenset({"drums", "bass", "melody"})
SECTION_KINDS: dict[str, SectionKind] = {
    "intro": SectionKind(frozenset({"drums", "bass"}), -1, "fill"),
    "verse": SectionKind(ALL_PARTS, 0, "fill"),
    "pre-chorus": SectionKind(ALL_PARTS, 0, "build"),
    "chorus": SectionKind(ALL_PARTS, 1, "fill"),
    "hook": SectionKind(ALL_PARTS, 1, "fill"),
    "bridge": SectionKind(ALL_PARTS, 0, "fill"),
    "solo": SectionKind(ALL_PARTS, 0, "fill"),
    "interlude": SectionKind(frozenset({"drums", "bass"}), 0, "fill"),
    "head": SectionKind(ALL_PARTS, 0, "fill"),
    "build": SectionKind(ALL_PARTS, 0, "build"),
    "drop": SectionKind(ALL_PARTS, 1, "fill"),
    "break": SectionKind(frozenset({"bass", "melody"}), -1, "build"),
    "breakdown": SectionKind(frozenset({"bass", "melody"}), -1, "build"),
    "outro": SectionKind(frozenset({"drums", "bass"}), -1, "none"),
}
NAME_ALIASES: dict[str, str] = {"prechorus": "pre-chorus", "pre chorus": "pre-chorus", "refrain": "chorus",
                                "instrumental": "solo", "trans": "interlude", "a": "verse", "b": "chorus"}
DENSITY_STEPS: tuple[str, ...] = ("sparse", "normal", "busy")


class FormError(ConditionError):
    """A form that cannot be composed; the message names the field `form`."""

    field = "form"


@dataclass(frozen=True)
class Section:
    name: str  # a SECTION_KINDS name
    bars: int

    @property
    def kind(self) -> SectionKind:
        return SECTION_KINDS[self.name]


@dataclass(frozen=True)
class Form:
    sections: tuple[Section, ...]
    source: str = "typed"  # where the form came from, for run.json

    @property
    def bars(self) -> int:
        return sum(s.bars for s in self.sections)

    @property
    def starts(self) -> tuple[int, ...]:
        """The first bar of each section."""
        out, bar = [], 0
        for section in self.sections:
            out.append(bar)
            bar += section.bars
        return tuple(out)

    def text(self) -> str:
        """'intro:4 verse:8 ...', the form `parse_form` reads back."""
        return " ".join(f"{s.name}:{s.bars}" for s in self.sections)

    def first_of(self, index: int) -> int:
        """The index of the first section with the name of section `index` (itself when new)."""
        name = self.sections[index].name
        return next(i for i, s in enumerate(self.sections) if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text(), "source": self.source,
                "sections": [{"name": s.name, "start_bar": start, "bars": s.bars}
                             for s, start in zip(self.sections, self.starts)]}


def section_name(word: str) -> str | None:
    """A section name as typed ('Chorus', 'pre chorus', 'refrain') -> its SECTION_KINDS name."""
    lowered = " ".join(word.lower().replace("_", " ").split())
    lowered = NAME_ALIASES.get(lowered, lowered)
    return lowered if lowered in SECTION_KINDS else None


_SECTION_TOKEN = re.compile(r"([A-Za-z][A-Za-z -]*?)\s*[:x×*]\s*(\d+)")


def parse_form(text: str) -> Form:
    """'intro:4 verse:8 chorus:8 outro:4' -> Form; sections of 1-16 bars, 2-64 bars in all."""
    stripped = " ".join(text.split())
    if not stripped:
        raise FormError(f"form: empty; {FORM_HELP}")
    if len(stripped) > 400:
        raise FormError(f"form: {len(stripped)} characters is not a form; {FORM_HELP}")
    sections = []
    rest = _SECTION_TOKEN.sub(" ", stripped).replace(",", " ").strip()
    if rest:
        raise FormError(f"form: cannot read {rest[:40]!r}; {FORM_HELP}")
    for word, count in _SECTION_TOKEN.findall(stripped):
        name = section_name(word)
        if name is None:
            raise FormError(f"form: {word.strip()!r} is not a section; use one of {', '.join(SECTION_KINDS)}")
        bars = int(count)
        if not 1 <= bars <= MAX_SECTION_BARS:
            raise FormError(f"form: {name}:{bars}: a section is 1-{MAX_SECTION_BARS} bars; split a longer one "
                            f"in two (e.g. {name}:8 {name}:8)")
        sections.append(Section(name, bars))
    form = Form(tuple(sections))
    if not MIN_FORM_BARS <= form.bars <= MAX_FORM_BARS:
        raise FormError(f"form: {form.bars} bars in all; a form is {MIN_FORM_BARS}-{MAX_FORM_BARS} bars")
    return form


# ------------------------------------------------------------------ defaults per genre

# Each genre's `form` in the genre table (configs/genres.yaml): the Billboard style its real forms
# come from (by the style its artists are filed under, harmony_data.ARTIST_STYLES), or, for genres
# with no data of their own, a documented convention: dance music builds and drops (intro, build,
# drop, break, build, drop, outro), hip-hop and trap alternate 16-bar verses and 8-bar hooks, lofi
# and ambient state a theme and a second one, jazz plays a head, a solo over its changes and the
# head again.
GENRE_FORM_STYLE: dict[str, str] = {g.name: g.form.billboard_style for g in genre_table().genres.values()
                                    if g.form.billboard_style is not None}
CONVENTIONS: dict[str, tuple[tuple[str, int], ...]] = {g.name: g.form.convention for g in genre_table().genres.values()
                                                       if g.form.convention is not None}


@cache
def load_forms(path: Path = FORMS_PATH) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise FormError(f"form: cannot read the form table {path} ({error}); rebuild it with "
                        "`python -m stemforge.symbolic.recipes.forms build`") from error


def _fit(sections: list[tuple[str, int]], bars: int) -> tuple[Section, ...]:
    """A sequence of (name, bars) fitted to `bars` in all: its outro kept for the end (4 bars,
    8 from 40 bars on), then its sections in order while they fit whole (its body, not the
    intro, again from the start when it runs out), the bars left over added to the last
    section where it stays within 16 bars, else given to one more section."""
    outro = next((s for s in reversed(sections) if s[0] == "outro"), None)
    ending = min(outro[1], 8 if bars >= 40 else 4) if outro and bars >= 20 else 0
    main = [s for s in sections if s[0] != "outro"] or list(sections)
    body = [s for s in main if s[0] != "intro"] or main
    plan: list[list] = []
    total, queue = 0, list(main)
    while True:
        if not queue:
            queue = list(body)
        name, length = queue[0]
        if plan and plan[-1][0] == name and len(queue) < len(main):  # the body again: no section twice in a row
            queue.pop(0)
            continue
        if total + length > bars - ending:
            break
        queue.pop(0)
        plan.append([name, length])
        total += length
    left = bars - ending - total
    if left:
        # a section that comes back keeps its length (a return is its first statement again)
        once = plan and sum(p[0] == plan[-1][0] for p in plan) == 1
        if once and plan[-1][1] + left <= MAX_SECTION_BARS and (left < 4 or plan[-1][0] != "intro"):
            plan[-1][1] += left
        elif ending and ending + left <= MAX_SECTION_BARS:
            ending += left
        elif plan and sum(p[0] == "outro" for p in plan) == 0 and left <= MAX_SECTION_BARS:
            ending = left
        else:
            plan.append([queue[0][0] if queue else body[0][0], left])
    if ending:
        plan.append(["outro", ending])
    return tuple(Section(name, length) for name, length in plan)


def fitted_form(form: Form, bars: int, source: str) -> Form:
    """A form's sequence of sections fitted to `bars` in all (see `_fit`)."""
    return Form(_fit([(s.name, s.bars) for s in form.sections], bars), source)


def _fit_with_returns(sequence: list[tuple[str, int]], bars: int) -> tuple[Section, ...]:
    """`_fit` at the sequence's own lengths, else (a short track) with sections of at most 8
    bars, without the intro, or at half length (at least 4), whichever first lets a section
    come back (a 32-bar pop form is 'intro:4 verse:8 chorus:8 verse:8 outro:4', not one verse
    and one 16-bar chorus); the sequence's own lengths where none does."""
    no_intro = [s for s in sequence if s[0] != "intro"] or sequence
    capped = [(name, min(length, 8)) for name, length in sequence]
    halved = [(name, max(4, 4 * round(length / 8))) for name, length in sequence]
    for candidate in (sequence, capped, no_intro, [s for s in capped if s[0] != "intro"] or capped, halved,
                      [s for s in halved if s[0] != "intro"] or halved):
        fitted = _fit(list(candidate), bars)
        names = [s.name for s in fitted if s.name not in ("intro", "outro")]
        if len(set(names)) < len(names):
            return fitted
    return _fit(list(sequence), bars)


def default_form(genre: str, bars: int, seed: int) -> Form:
    """The form a piece of `bars` bars gets when none is asked: one of the real forms of the
    genre's Billboard style (drawn by the seed, weighted by the songs using it, sections at the
    style's median lengths) or the genre's convention, fitted to `bars`."""
    from stemforge.symbolic.runtime.plan import spread_draw

    default = genre_entry(genre).form
    style = default.billboard_style
    if style is not None:
        table = load_forms()["styles"].get(style)
        if not table or not table["forms"]:
            raise FormError(f"genre {genre!r}, form: the form table {FORMS_PATH} has no Billboard {style!r} forms; "
                            "rebuild it with `python -m stemforge.symbolic.recipes.forms build`")
        forms = table["forms"]
        entry = forms[spread_draw([f["songs"] for f in forms], f"form|{genre}", seed)]
        lengths = table["lengths"]
        sequence = [(name, int(lengths.get(name, 8))) for name in entry["sections"]]
        return Form(_fit_with_returns(sequence, bars), f"Billboard {style}: {' '.join(entry['sections'])} "
                                                       f"({entry['songs']} songs)")
    sequence = list(default.convention or ())
    # dance tracks and jazz keep their sections' lengths (a build is 4 bars, a drop 8-16, a head
    # its chorus); the song conventions shorten theirs so that a short track still has a return
    keeps_lengths = any(name in ("build", "drop", "head") for name, _ in sequence)
    fit = _fit if keeps_lengths else _fit_with_returns
    return Form(fit(sequence, bars), f"{genre} convention: {' '.join(n for n, _ in sequence)}")


_FORM_WORDS: tuple[tuple[str, str], ...] = (
    (r"\bverse\s+and\s+(?:a\s+)?chorus\b", "verse:8 chorus:8"),
    (r"\bwith\s+a\s+drop\b", "intro:4 build:4 drop:8"),
    (r"\bfull\s+(?:track|song)\b", ""),
)


def form_in_prompt(prompt: str) -> tuple[str | None, int | None]:
    """(form text, bars) a prompt asks for: 'verse and chorus' -> 'verse:8 chorus:8', 'with a
    drop' -> an intro, a build and the drop; 'full track' -> the genre's default form over 32
    bars (the form left to `default_form`: text None, bars 32)."""
    lowered = " ".join(prompt.lower().split())
    for pattern, text in _FORM_WORDS:
        if re.search(pattern, lowered):
            return (text or None), (32 if not text else None)
    return None, None
