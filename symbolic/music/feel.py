"""Feel grids: where the notes of a played (not quantized) part sit inside a beat, and the
grid a performance is snapped to. A drummer's swung "and" is neither on the straight 16th
grid nor on the token grid's nearest step; reading it through the feel it was played with
puts it where the model has seen it. The corpus builder quantizes performances this way,
the novelty check reads pieces this way, and composing snaps kept parts and seed clips this
way, so all three agree on what a played note means.

Times are ticks at 480 per beat (symbolic/core/ticks.py).
"""

from __future__ import annotations

import numpy as np

from stemforge.symbolic.core.ticks import TICKS_PER_BEAT as TPB

# Positions of a note inside a beat (ticks) for each feel. "triplet" is swung 8ths and
# triplets (shuffle, jazz); "swing16" is swung 16ths (the MPC swing of hip-hop and lofi).
FEEL_GRIDS: dict[str, tuple[int, ...]] = {
    "straight": (0, 120, 240, 360),
    "triplet": (0, 160, 320),
    "swing16": (0, 160, 240, 400),
}
# How much better (lower mean error) a swung grid must fit than the straight 16th grid:
# the swung grids have fewer or uneven slots, so noise alone should not pick them.
SWING_MARGIN = 0.75


def grid_error(ticks: list[int], feel: str, offset: int = 0) -> float:
    """Mean distance (ticks) from each onset, moved by `offset`, to the nearest slot of `feel`."""
    if not len(ticks):
        return 0.0
    slots = np.array(FEEL_GRIDS[feel] + (TPB,))
    positions = (np.asarray(ticks) + offset) % TPB
    return float(np.abs(positions[:, None] - slots[None, :]).min(axis=1).mean())


def detect_feel(ticks: list[int]) -> tuple[str, int]:
    """The grid an expressive performance sits on ('straight', 'triplet' or 'swing16')
    and the offset (ticks) that aligns it. Drummers sit ahead of or behind the click by a
    fairly constant amount: the offset is the median deviation of the hits near a beat.
    The feel is then judged on the off-beat hits only (on-beat hits fit every grid)."""
    positions = np.asarray(ticks, dtype=float) % TPB
    deviation = np.where(positions > TPB / 2, positions - TPB, positions)
    near_beat = deviation[np.abs(deviation) <= 80]
    offset = int(round(-float(np.median(near_beat)) / 10) * 10) if len(near_beat) else 0
    shifted = (positions + offset) % TPB
    offbeat = shifted[(shifted > 80) & (shifted < TPB - 80)]
    if len(offbeat) < 8:
        return "straight", offset
    # Swung 8ths land anywhere from ~290 to ~380 ticks (a 58-75% swing), so the straight
    # grid would read them as the last 16th of the beat. A groove whose late off-beats
    # outnumber its straight "and"s twice over is swung: a straight groove always has the "and".
    straight_ands = np.count_nonzero((offbeat >= 200) & (offbeat < 280))
    late = np.count_nonzero((offbeat >= 280) & (offbeat < 400))
    if late >= 8 and late >= 2 * straight_ands:
        return "triplet", offset
    errors = {feel: grid_error(list(offbeat), feel) for feel in FEEL_GRIDS}
    swung = min(("triplet", "swing16"), key=lambda f: errors[f])
    return (swung if errors[swung] < SWING_MARGIN * errors["straight"] else "straight"), offset


def snap(tick: int, feel: str) -> int:
    """The nearest slot of `feel` (may be the next beat)."""
    beat, offset = divmod(tick, TPB)
    slots = FEEL_GRIDS[feel] + (TPB,)
    return beat * TPB + min(slots, key=lambda s: abs(offset - s))


def clamp_velocity(value: float) -> int:
    return int(max(1, min(127, round(value))))
