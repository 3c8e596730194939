"""The sampler's musical steering: follows a `CompositionPlan` token by token.

The grammar (`symbolic.runtime.grammar`) keeps every sequence valid; the guide makes it music a
producer keeps. It watches each token go by (`observe`), hands the sampler whole bars to
force where the plan repeats a bar (`bar_tokens`), and otherwise shifts the model's
logits (in nats) where the plan has an opinion:

- where a note goes (decision points: a new position, another note here, or the next bar):
  density (busy/sparse push toward more or fewer notes) and, for the bass, the kicks of the
  drum track already written (on a kick +, off a kick -, skipping an uncovered kick -);
- which pitch it gets (bass and melody): the key's scale, the chord's bass note where the
  chord changes, chord tones (melody: on the beats), and the size of the step from the
  previous note (repeats and steps +, leaps beyond a 4th - per semitone). Pitch shifts keep
  the total mass of the pitch tokens, so they change which note is played, never whether.

Strengths are nats on the model's logits, so a confident model can still overrule them.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from stemforge.symbolic.core.ticks import BEATS_PER_BAR
from stemforge.symbolic.decoding.style import StyleStats
from stemforge.symbolic.music.keys import parse_key
from stemforge.symbolic.runtime.grammar import GrammarState, GrammarTables, Kind
from stemforge.symbolic.runtime.plan import CompositionPlan

KICK_PITCHES: frozenset[int] = frozenset({35, 36})
LEAP_SEMITONES = 5  # a 4th or more
GENRE_CONTRAST_LIMIT = 2.0  # nats: a genre's signature is stressed, never forced or forbidden


@dataclass(frozen=True)
class GuideStrengths:
    """How hard each rule pulls, in nats (0 switches a rule off)."""

    key: float = 1.5  # in-scale pitches of bass and melody
    home: float = 0.7  # on the beats, more for the tonic triad: the home notes that make the key heard
    # Melody notes on the beats, more again for the key's third, which tells minor from major.
    # Measured on the default model (120 requests, key-finding on bass + melody): a minor
    # key's third on the melody at 2.5 (was 1.0 on bass and melody) finds 73% of minor keys
    # (55% before; 80% at 3.5); on the bass too it found 87% but pulled the bass's downbeats
    # off the chord's root. A major key's third pulls towards the key of that third (E minor
    # for C major): 73% of major keys found at 2.0, 78% at 1.0, 80% at 0.5.
    minor_third: float = 2.5
    major_third: float = 0.5
    chord_bass: float = 6.0  # the chord's bass note for the first bass note of a chord
    bass_chord_tone: float = 1.5
    bass_repeat: float = 1.0
    melody_chord_tone: float = 2.0  # chord tones on the beats
    melody_step: float = 0.8  # a step of 1-2 semitones
    leap_per_semitone: float = 0.25  # beyond a major 3rd, bass and melody
    bass_on_change: float = 3.0  # a bass note where the chord changes (and on each downbeat)
    kick: float = 3.0  # bass positions on a kick (+, times the kick cover) and off one (-, times the kick lock)
    skip_kick: float = 4.0  # moving past a kick no bass note has taken yet, times the plan's kick cover
    density: float = 1.0  # per beat of gap to the next note: busy favours short gaps, sparse long
    genre: float = 1.5  # times the genre contrast of onset positions (style.json), clipped
    backbone: float = 3.0  # the genre's skeleton hits (style.json): their position, their drum
    drum_mix: float = 0.75  # which drum: weight of the genre's own drum shares against the model's
    fill: float = 1.5  # toms and snare in a drum fill's free beats
    off_feel: float = 4.0  # a drum onset on a slot of another feel than the piece's (line onsets: a third of it)
    clash: float = 2.0  # melody notes on the beats a semitone off a chord tone (not themselves one)
    # the melody's line: its register around a centre with a high point in each 4-bar phrase,
    # nats a semitone beyond `contour_slack` from where the phrase is; pitches worn out in
    # the phrase, a repeated note when the line already repeats too much, the same downbeat
    contour: float = 0.12
    overuse: float = 0.25  # per use of a pitch in the phrase beyond two
    repeat_excess: float = 1.0  # a repeated note once more than REPEAT_SHARE of the moves repeat
    same_downbeat: float = 0.8


DENSITY_SIGN: dict[str, float] = {"sparse": -1.0, "normal": 0.0, "busy": 1.0}
# the bass is held to the kicks, so the density words must pull it harder to show
DENSITY_ROLE_SCALE: dict[str, float] = {"drums": 1.0, "bass": 2.0, "melody": 1.0}
# Onsets a bar asked of each density, as a multiple of the genre's rate in the training data.
DENSITY_RATE: dict[str, float] = {"sparse": 0.5, "normal": 1.0, "busy": 1.4}
DENSITY_ERROR_LIMIT = 6.0  # notes: how far behind or ahead the controller reacts to
OFF_DENSITY_CONTRAST = 0.5  # genre contrast of onset positions kept in sparse and busy parts
STACK_GAP_BEATS = 0.25  # a melody note stacked on another counts, for density, as a 16th away
MELODY_CENTRE = 71  # where a melody sings (POP909's melodies: median pitch 73, range 14)
PHRASE_CONTOUR: tuple[int, ...] = (-1, 1, 4, -2)  # semitones from the centre, bar by bar of a phrase: a high point in its third bar
CONTOUR_SLACK = 4  # semitones either side of the contour that cost nothing
REPEAT_SHARE = 0.25  # POP909's melodies repeat a note in 24% of their moves
FILL_DRUMS = frozenset({38, 40, 41, 43, 45, 47, 48, 50})  # snares and toms: what a fill is played on
SAMPLE_PITCH = -1  # a place in forced tokens where the pitch is sampled (a bar's rhythm over new chords)
# The slots of a beat (of 12) that belong to the other feels: a straight groove has no
# triplets or swung 16ths, a shuffle no straight 16ths (rolls on other slots stay free).
OFF_FEEL_SLOTS: dict[str, tuple[int, ...]] = {"straight": (4, 8, 10), "triplet": (3, 9, 10), "swing16": (3, 8, 9)}


def guide_pitches(logits: np.ndarray, bias: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Shift probability among the allowed pitches by `bias`, keeping their total mass: the
    guidance changes which note is played, never whether one is."""
    if not bool(pitches.any()):
        return logits
    before = logits[pitches]
    return _with_mass_kept(logits, pitches, before, before + bias[pitches])


def mix_pitches(logits: np.ndarray, log_shares: np.ndarray, pitches: np.ndarray, weight: float) -> np.ndarray:
    """Among `pitches`, the geometric mixture model^(1-weight) * shares^weight (a product of
    experts: the model and the genre's own statistics), keeping the pitches' total mass.
    Unlike a contrast with the other genres, it never exaggerates a drum the genre plays
    rarely: the mixture lies between the two distributions."""
    if not weight or not bool(pitches.any()):
        return logits
    before = logits[pitches]
    return _with_mass_kept(logits, pitches, before, (1 - weight) * before + weight * np.maximum(log_shares[pitches], -30.0))


def _with_mass_kept(logits: np.ndarray, pitches: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """`logits` with the `pitches` entries moved from `before` to `after`, rescaled so that
    together they keep the probability mass they had."""
    out = logits.copy()
    out[pitches] = after - np.logaddexp.reduce(after) + np.logaddexp.reduce(before)
    return out


def density_target(rate: float, density: str) -> float:
    """Notes a bar asked of a part: the genre's rate times the word's factor; busy is at
    least one more than the rate, so a part a genre barely plays (ambient drums) still fills."""
    target = rate * DENSITY_RATE[density]
    return max(target, rate + 1.0) if density == "busy" else target


class Guide:
    """One piece's steering state; build a new one per sample."""

    def __init__(self, tables: GrammarTables, plan: CompositionPlan | None, key: str | None,
                 strengths: GuideStrengths, style: StyleStats | None = None, genre: str | None = None) -> None:
        self.tables = tables
        self.plan = plan
        self.strengths = strengths
        grid = tables.tokenizer.spec.grid_per_beat
        self.grid_per_beat = grid
        self.positions_per_bar = tables.ticks_per_bar
        self.pitch_of = np.where(tables.pitched, tables.value, -1000).astype(np.float32)
        pc = tables.value % 12
        self.pc_masks = np.stack([(tables.pitched & (pc == p)).astype(np.float32) for p in range(12)])
        self.key_vector: np.ndarray | None = None
        self.on_beat_vectors: dict[str, np.ndarray] = {}  # per role: the key's pull on the beats
        if key and strengths.key:
            parsed = parse_key(key)
            third = (parsed.tonic + (3 if parsed.mode == "minor" else 4)) % 12
            triad = [parsed.tonic, third, (parsed.tonic + 7) % 12]
            self.key_vector = tables.in_key(key) * strengths.key
            third_pull = strengths.minor_third if parsed.mode == "minor" else strengths.major_third
            with_home = self.key_vector + strengths.home * self.pc_masks[triad].sum(0)
            # the bass's beats belong to the chord's root, so only the melody's get the third
            self.on_beat_vectors = {"bass": with_home, "melody": with_home + third_pull * self.pc_masks[third]}
        position_ids = np.flatnonzero(tables.kind == Kind.POSITION)
        order = tables.value[position_ids].argsort()
        self.position_ids = position_ids[order]  # token id of Position_0, Position_1, ...
        self.closing = tables.bar | tables.track_end
        self.drum_positions, self.drum_pitches = self._genre_contrast(style, genre)
        self.onset_rates = {role: style.onset_rate(genre, role) for role in ("drums", "bass", "melody")
                            if style is not None and style.onset_rate(genre, role)}
        self.onset_debt = 0.0  # notes the sampled bars of this track are behind their target
        self.bar_notes = 0  # drum hits of the current bar (the drums' density counts hits)
        self.line_positions = {role: self._line_contrast(style, genre, role) for role in ("bass", "melody")}
        self.backbone = self._skeleton(plan) if plan and plan.drum_skeleton else self._backbone(style, genre)
        self.off_feel = np.zeros(self.positions_per_bar, np.float32)
        if plan is not None and plan.feel in OFF_FEEL_SLOTS:
            slots = np.arange(self.positions_per_bar) % grid
            self.off_feel[np.isin(slots, OFF_FEEL_SLOTS[plan.feel])] = strengths.off_feel
        self.fill_tokens = np.array([tables.tokenizer.vocab[f"PitchDrum_{p}"] for p in sorted(FILL_DRUMS)
                                     if f"PitchDrum_{p}" in tables.tokenizer.vocab], dtype=np.int64)
        self.key = parse_key(key) if key else None
        self._beat_vectors: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}  # (chord, role) -> (on beat, off)
        chords = plan.chords if plan else ()
        self.chord_starts = [c[0] for c in chords]
        self.chords = chords
        self._chord_vectors: dict[frozenset[int], np.ndarray] = {}
        # what has been written so far
        self.bodies: dict[str, list[list[int]]] = {}
        self.kicks: dict[int, set[int]] = {}
        self.previous_pitch: int | None = None
        self.previous_chord: int | None = None
        self.position = -1
        self.onsets: set[int] = set()
        self.closed = False
        self.free_from = 0  # in a varied bar, the kept first beats take no new notes
        self.in_fill = False  # this drum bar's free beats are a fill
        self.phrase_uses: dict[int, int] = {}  # melody pitch -> notes of it in this 4-bar phrase
        self.moves = 0  # the melody's moves from note to note so far, and how many repeated a pitch
        self.repeated_moves = 0
        self.previous_downbeat: int | None = None

    def _genre_contrast(self, style: StyleStats | None, genre: str | None
                        ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(position bias (positions,), log P(drum | position, genre) (positions, vocab),
        -inf where the genre data has no such drum) for `genre`."""
        if style is None or genre not in style.bars or not self.strengths.genre \
                or style.positions_per_bar != self.positions_per_bar:
            return None, None
        position = style.drum_position_log_ratio(genre)
        positions = np.clip(position.astype(np.float32), -GENRE_CONTRAST_LIMIT, GENRE_CONTRAST_LIMIT)
        log_shares = style.drum_log_share(genre)
        shares = np.full((self.positions_per_bar, len(self.tables.kind)), -np.inf, np.float32)
        for token in np.flatnonzero(self.tables.kind == Kind.PITCH_DRUM).tolist():
            share = log_shares.get(int(self.tables.value[token]))
            if share is not None:
                shares[:, token] = share
        return positions * self.strengths.genre, shares

    def _backbone(self, style: StyleStats | None, genre: str | None) -> dict[int, list[int]]:
        """position -> token ids of the drums the genre plays there in most bars."""
        if style is None or genre not in style.bars or not self.strengths.backbone \
                or style.positions_per_bar != self.positions_per_bar:
            return {}
        vocab = self.tables.tokenizer.vocab
        return {position: [vocab[f"PitchDrum_{p}"] for p in sorted(pitches) if f"PitchDrum_{p}" in vocab]
                for position, pitches in sorted(style.backbone(genre).items())}

    def _skeleton(self, plan: CompositionPlan) -> dict[int, list[int]]:
        """position -> token ids of the piece's own kick+snare skeleton (the plan's draw)."""
        vocab = self.tables.tokenizer.vocab
        return {position: [vocab[f"PitchDrum_{p}"] for p in sorted(pitches) if f"PitchDrum_{p}" in vocab]
                for position, pitches in sorted(plan.drum_skeleton.items())}

    def _missing_backbone(self, state: GrammarState) -> list[int]:
        """Skeleton positions still ahead in this bar (the current one included while one of
        its skeleton drums is unplayed)."""
        missing = []
        for position, tokens in self.backbone.items():
            if position > self.position or (position == self.position
                                            and not set(tokens) <= state.pitches_here):
                missing.append(position)
        return missing

    def _line_contrast(self, style: StyleStats | None, genre: str | None, role: str) -> np.ndarray | None:
        if style is None or genre not in style.bars or not self.strengths.genre \
                or style.positions_per_bar != self.positions_per_bar:
            return None
        contrast = style.line_log_ratio(genre, role).astype(np.float32)
        return np.clip(contrast, -GENRE_CONTRAST_LIMIT, GENRE_CONTRAST_LIMIT) * self.strengths.genre

    # ------------------------------------------------------------------ watching

    def observe(self, token: int, state: GrammarState) -> None:
        """Called after `state.advance(token)`."""
        kind = Kind(int(self.tables.kind[token]))
        role = state.role
        if kind == Kind.PROGRAM:
            self.bodies[role] = []
            self.previous_pitch, self.previous_chord = None, None
            self.onset_debt = 0.0
            self.phrase_uses, self.moves, self.repeated_moves, self.previous_downbeat = {}, 0, 0, None
            return
        if kind in (Kind.BAR, Kind.TRACK_END) and self.bodies.get(role) and not self.closed:
            finished = state.bar_index - (kind == Kind.BAR)  # a bar it sampled
            self.onset_debt += (self._bar_target(role, finished) or 0.0) - self._density_count(role)
        if kind == Kind.BAR:
            self.bodies[role].append([])
            self.position, self.onsets, self.closed, self.free_from, self.in_fill = -1, set(), False, 0, False
            self.bar_notes = 0
            if state.bar_index % 4 == 0:
                self.phrase_uses = {}
            return
        if state.stage != "body" or not self.bodies.get(role):
            return
        self.bodies[role][-1].append(token)
        value = int(self.tables.value[token])
        if kind == Kind.POSITION:
            self.position = value
        elif kind == Kind.PITCH_DRUM:
            self.onsets.add(self.position)
            self.bar_notes += 1
            if role == "drums" and value in KICK_PITCHES:
                self.kicks.setdefault(state.bar_index, set()).add(self.position)
        elif kind == Kind.PITCH:
            self.onsets.add(self.position)
            if role == "melody":
                if self.previous_pitch is not None:
                    self.moves += 1
                    self.repeated_moves += value == self.previous_pitch
                self.phrase_uses[value] = self.phrase_uses.get(value, 0) + 1
                if self.position == 0:
                    self.previous_downbeat = value
            self.previous_pitch = value
            self.previous_chord = self._chord_index(state.bar_index)

    def bar_tokens(self, state: GrammarState) -> list[int]:
        """Tokens to force at the start of the bar `state` has just entered: the plan's
        repeat of an earlier bar (whole, or its first half for a variation), else none."""
        role, bar = state.role, state.bar_index
        if self.plan is None:
            return []
        if bar in self.plan.rests.get(role, ()):
            self.closed = True  # the line breathes: the bar ends at once
            return []
        source = self.plan.sources.get(role, {}).get(bar)
        bodies = self.bodies.get(role, [])
        if source is None or source.source >= len(bodies) - 1:
            return []
        body = bodies[source.source]
        self.in_fill = role == "drums" and bar in self.plan.fills
        if source.whole:
            kept = list(body)
            self.closed = not source.rhythm_only  # an echo's pitches may run out of room: the bar stays open
        else:
            kept, limit = [], source.keep_beats * self.grid_per_beat
            self.free_from = limit
            for token in body:
                if self.tables.kind[token] == Kind.POSITION and self.tables.value[token] >= limit:
                    break
                kept.append(token)
        if source.rhythm_only:
            kept = [SAMPLE_PITCH if self.tables.kind[t] == Kind.PITCH else t for t in kept]
            if source.whole:
                self.free_from = self.positions_per_bar
        return kept

    # ------------------------------------------------------------------ steering

    def steer(self, state: GrammarState, mask: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask, logits) for one sampled token."""
        if state.stage != "body" or state.bar_count == 0:
            return mask, logits
        role = state.role
        if role != "drums" and state.last in (Kind.POSITION, Kind.DURATION):
            logits = self._steer_pitch(state, mask, logits)
        if role == "drums" and self.drum_pitches is not None and state.last in (Kind.POSITION, Kind.VELOCITY):
            logits = mix_pitches(logits, self.drum_pitches[max(self.position, 0)], mask & self.tables.any_pitch,
                                 self.strengths.drum_mix)
        if role == "drums" and self.in_fill and state.last in (Kind.POSITION, Kind.VELOCITY) \
                and self.position >= self.free_from and self.strengths.fill:
            logits = logits.copy()
            logits[self.fill_tokens] += self.strengths.fill
        if role == "drums" and self.backbone and state.last in (Kind.POSITION, Kind.VELOCITY) \
                and self.position in self.backbone and self.position >= self.free_from and not self.in_fill:
            unplayed = [t for t in self.backbone[self.position] if t not in state.pitches_here]
            if unplayed:
                logits = logits.copy()
                logits[unplayed] += self.strengths.backbone * 1.5
        if state.last in (Kind.BAR, Kind.DURATION) or (state.last == Kind.VELOCITY and role == "drums"):
            if self.closed:
                closing = mask & self.closing
                if bool(closing.any()):
                    return closing, logits
            if role == "bass" and state.last == Kind.DURATION:
                mask = mask & ~self.tables.pitched  # a bass line: one note at a time
            if self.free_from:
                kept = np.zeros_like(mask)
                kept[self.position_ids[:self.free_from]] = True
                if self.position < self.free_from:
                    kept |= self.tables.any_pitch
                if bool((mask & ~kept).any()):
                    mask = mask & ~kept
            mask = self._density_bounds(state, mask)
            logits = self._steer_onsets(state, mask, logits)
        return mask, logits

    def _density_bounds(self, state: GrammarState, mask: np.ndarray) -> np.ndarray:
        """Where the model holds to its rhythm against every push (a walking bass, a techno
        hat line), the density words become limits on each sampled bar: sparse stops a bar
        at its target, busy may not end a bar below it."""
        target = self._bar_target(state.role, state.bar_index)
        density = self.plan.density if self.plan else "normal"
        if target is None or density == "normal" or self.closed:
            return mask
        count = self._density_count(state.role)
        due = target + self.onset_debt  # this bar's share, plus what earlier bars owe or are ahead by
        if density == "sparse" and count >= math.ceil(due):
            bounded = mask & ~self.tables.note_start
        elif density == "busy" and count < math.floor(due):
            bounded = mask & ~self.closing
            if state.role != "drums":  # a line's onsets are new positions, not stacked notes
                bounded &= ~self.tables.pitched
        else:
            return mask
        return bounded if bool(bounded.any()) else mask

    def _steer_onsets(self, state: GrammarState, mask: np.ndarray, logits: np.ndarray) -> np.ndarray:
        s = self.strengths
        lock, cover = (self.plan.kick_lock, self.plan.kick_cover) if self.plan else (0.0, 0.0)
        onto_kick = max(lock, cover)  # a locked bass is pulled onto the kicks as hard as a covering one
        kicks = self.kicks.get(state.bar_index) if state.role == "bass" and onto_kick > 0 else None
        genre = self.drum_positions if state.role == "drums" else self.line_positions.get(state.role)
        density = self._density_slope(state)
        changes = self._changes_in_bar(state.bar_index) if state.role == "bass" and s.bass_on_change else ()
        skeleton = self._missing_backbone(state) if state.role == "drums" and self.backbone and not self.in_fill else []
        off_feel = self.off_feel.any()
        if not density and not kicks and genre is None and not changes and not skeleton and not off_feel:
            return logits
        bias = np.zeros_like(logits)
        if off_feel:
            bias[self.position_ids] -= self.off_feel * (1.0 if state.role == "drums" else 1 / 3)
        for position in changes:
            if position > self.position:
                bias[self.position_ids[position]] += s.bass_on_change
        if genre is not None:
            # the contrast holds the genre's usual rhythm: a busier or sparser part must leave it;
            # it never pulls onto the slots of another feel than the piece's (a straight jazz groove)
            contrast = genre * (1.0 if self.plan is None or self.plan.density == "normal" else OFF_DENSITY_CONTRAST)
            bias[self.position_ids] += np.where(self.off_feel > 0, np.minimum(contrast, 0.0), contrast)
        if density:
            # the gap to the next onset in beats; ending the bar is a gap to its end
            current = max(self.position, 0)
            gaps = (np.maximum(np.arange(self.positions_per_bar) - current, 0) / self.grid_per_beat).astype(np.float32)
            bias[self.position_ids] -= density * gaps
            bias[self.closing] -= density * (self.positions_per_bar - current) / self.grid_per_beat
            if state.role != "drums" and density > 0:
                # another note at this position is no new onset: no easier than the next 16th
                bias[self.tables.pitched] -= density * STACK_GAP_BEATS
            elif state.role == "drums" and density < 0:
                # ahead of the target: another drum on this hit is a note too many
                bias[self.tables.any_pitch] += density * STACK_GAP_BEATS
        if skeleton:
            # no skipping the skeleton: moving past a hit still due costs; landing on it and
            # stacking more drums where one stands stay the model's choice
            ahead = [p for p in skeleton if p > self.position]
            if len(ahead) < len(skeleton):  # a skeleton drum still due here: strike it before moving on
                bias[self.position_ids] -= s.backbone
            elif ahead:
                bias[self.position_ids[ahead[0] + 1:]] -= s.backbone
            bias[self.closing] -= s.backbone
        if kicks:
            # busy bass adds notes between the kicks, so off the kick costs half as much
            off_kick = s.kick * lock * (0.5 if self.plan and self.plan.density == "busy" else 1.0)
            by_position = np.full(self.positions_per_bar, -off_kick, np.float32)
            by_position[sorted(kicks)] = s.kick * onto_kick
            uncovered = [k for k in sorted(kicks) if k > self.position and k not in self.onsets]
            if uncovered:
                by_position[uncovered[0] + 1:] -= s.skip_kick * cover
                bias[self.closing] -= s.skip_kick * cover
            bias[self.position_ids] += by_position
        return logits + bias

    def _density_slope(self, state: GrammarState) -> float:
        """Nats per beat of gap against the next onset: a fixed push per density word, plus,
        with the genre's onset rate known (style.json), a controller: the onsets this track
        is behind its target (the genre's rate times the word's factor) shorten the gaps,
        onsets ahead lengthen them, so any model lands near the asked density."""
        s = self.strengths
        density = self.plan.density if self.plan else "normal"
        slope = DENSITY_SIGN.get(density, 0.0) * s.density * DENSITY_ROLE_SCALE.get(state.role, 1.0)
        target = self._bar_target(state.role, state.bar_index)
        if target is not None:
            expected = target * (max(self.position, 0) + 1) / self.positions_per_bar
            behind = self.onset_debt + expected - self._density_count(state.role)
            behind = max(-DENSITY_ERROR_LIMIT, min(DENSITY_ERROR_LIMIT, behind))
            slope += s.density * behind * BEATS_PER_BAR / max(target, 1.0)
        return slope

    def _bar_target(self, role: str, bar: int) -> float | None:
        """Notes asked of `role` in `bar`. A locked bass asks for about as many notes as the
        bar has kicks (a genre's usual count would push notes off the kick when the drums
        were written sparser than usual)."""
        rate = self.onset_rates.get(role)
        if rate is None:
            return None
        lock = self.plan.kick_lock if self.plan else 0.0
        kicks = self.kicks.get(bar) if role == "bass" and lock > 0 else None
        if kicks:
            rate = lock * len(kicks) + (1.0 - lock) * rate
        return density_target(rate, self.plan.density if self.plan else "normal")

    def _density_count(self, role: str) -> float:
        """Drums count hits (a kick and a hat together are two), the lines onsets."""
        return self.bar_notes if role == "drums" else len(self.onsets)

    def _changes_in_bar(self, bar: int) -> list[int]:
        """Positions of `bar` where a chord starts, the downbeat always included."""
        start = bar * self.positions_per_bar
        return [0] + [c - start for c in self.chord_starts if start < c < start + self.positions_per_bar]

    def _chord_index(self, bar: int) -> int | None:
        if not self.chords:
            return None
        tick = bar * self.positions_per_bar + max(self.position, 0)
        return max(0, bisect.bisect_right(self.chord_starts, tick) - 1)

    def _chord_vector(self, tones: frozenset[int]) -> np.ndarray:
        vector = self._chord_vectors.get(tones)
        if vector is None:
            vector = self._chord_vectors[tones] = self.pc_masks[sorted(tones)].sum(0)
        return vector

    def _key_vectors(self, index: int | None, role: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(on the beat, off the beat) pull of the key for `role` under chord `index`: the
        chord's scale instead of the key's where the chord has tones outside the key, and the
        home notes (tonic triad, the melody's third) only where they do not rub against the
        chord (a semitone from one of its tones without being one)."""
        if self.key is None or self.key_vector is None:
            return None, None
        chord = self.chords[index] if index is not None else None
        if chord is None or len(chord) < 6 or chord[5] == self.key.scale_pitch_classes:
            on_beat = self.on_beat_vectors.get(role)
            return (on_beat if on_beat is not None else self.key_vector), self.key_vector
        cached = self._beat_vectors.get((index, role))
        if cached is not None:
            return cached
        s = self.strengths
        tones, scale = chord[4], chord[5]
        rubs = {(t + d) % 12 for t in tones for d in (-1, 1)} - set(tones)
        scale_vector = s.key * self._chord_vector(frozenset(scale))
        key = self.key
        third = (key.tonic + (3 if key.mode == "minor" else 4)) % 12
        on_beat = scale_vector.copy()
        for pc in (key.tonic, third, (key.tonic + 7) % 12):
            if pc in scale and pc not in rubs:
                on_beat += s.home * self.pc_masks[pc]
        if role == "melody" and third in scale and third not in rubs:
            on_beat += (s.minor_third if key.mode == "minor" else s.major_third) * self.pc_masks[third]
        self._beat_vectors[(index, role)] = (on_beat, scale_vector)
        return on_beat, scale_vector

    def _steer_pitch(self, state: GrammarState, mask: np.ndarray, logits: np.ndarray) -> np.ndarray:
        s = self.strengths
        pitches = mask & self.tables.pitched
        if not bool(pitches.any()):
            return logits
        on_beat = self.position % self.grid_per_beat == 0
        melody = state.role == "melody"
        index = self._chord_index(state.bar_index)
        beat_pull, off_pull = self._key_vectors(index, state.role)
        key_pull = beat_pull if on_beat else off_pull
        bias = key_pull.copy() if key_pull is not None else np.zeros_like(logits)
        chord = self.chords[index] if index is not None else None
        if chord is not None:
            bass_pc, tones = chord[3], chord[4]
            if melody:
                if on_beat:
                    bias += s.melody_chord_tone * self._chord_vector(tones)
                    if s.clash:
                        rubs = frozenset({(t + d) % 12 for t in tones for d in (-1, 1)} - set(tones))
                        bias -= s.clash * self._chord_vector(rubs)
            elif self.position == 0 or index != self.previous_chord or self.previous_pitch is None:
                bias += s.chord_bass * self.pc_masks[bass_pc]
            else:
                bias += s.bass_chord_tone * self._chord_vector(tones)
        if self.previous_pitch is not None:
            distance = np.abs(self.pitch_of - self.previous_pitch)
            bias -= s.leap_per_semitone * np.maximum(distance - (LEAP_SEMITONES - 1), 0)
            if melody:
                bias += s.melody_step * ((distance >= 1) & (distance <= 2)).astype(np.float32)
                if self.moves and self.repeated_moves > REPEAT_SHARE * self.moves:
                    bias -= s.repeat_excess * (distance == 0).astype(np.float32)
            elif self.plan is not None and self.plan.walking:
                # a walking bass moves by steps and chromatic approaches: WJD's bass lines (jazz's
                # training bass) step in 35% of their moves and repeat in 25%, so no repeat bonus
                bias += s.melody_step * ((distance >= 1) & (distance <= 2)).astype(np.float32)
            else:
                bias += s.bass_repeat * (distance == 0).astype(np.float32)
        if melody:
            bias += self._line_shape(state.bar_index)
        return guide_pitches(logits, bias, pitches)

    def _line_shape(self, bar: int) -> np.ndarray:
        """The melody's register and variety: a cost a semitone beyond the phrase's contour
        (a centre and a high point in the third bar of each phrase), on pitches already
        played often in the phrase, and on the last downbeat's pitch for this downbeat."""
        s = self.strengths
        bias = np.zeros(len(self.pitch_of), np.float32)
        if s.contour:
            target = MELODY_CENTRE + PHRASE_CONTOUR[bar % len(PHRASE_CONTOUR)]
            bias -= s.contour * np.maximum(np.abs(self.pitch_of - target) - CONTOUR_SLACK, 0)
        if s.overuse:
            for pitch, uses in self.phrase_uses.items():
                if uses > 2:
                    bias[self.pitch_of == pitch] -= s.overuse * (uses - 2)
        if s.same_downbeat and self.position == 0 and self.previous_downbeat is not None:
            bias[self.pitch_of == self.previous_downbeat] -= s.same_downbeat
        return bias
