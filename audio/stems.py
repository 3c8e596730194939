"""`StemSet`: rendered stems of one arrangement, every stem exactly the loop length.

Audio is float32 `(channels, samples)`; all stems share one sample rate. The loop length
is `round(bars * beats_per_bar * 60 / bpm * sample_rate)` samples, bar 1 beat 1 at sample 0,
so stems dropped into a DAW at bar 1 line up and loop without warping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stemforge.symbolic.core.errors import UserError

# The mix (and every stem) peaks at or below this level, so nothing clips after 24-bit
# conversion and a DAW's inter-sample peaks keep some headroom.
MIX_CEILING_DB = -1.0


class RenderError(UserError):
    """A SoundFont, kit, preset or option that cannot be rendered; one line naming the file/field."""


def loop_samples(bars: int, bpm: float, sample_rate: int, beats_per_bar: int = 4) -> int:
    return round(bars * beats_per_bar * 60.0 / bpm * sample_rate)


def db_to_gain(gain_db: float) -> float:
    return float(10.0 ** (gain_db / 20.0))


@dataclass
class StemSet:
    sample_rate: int
    bpm: float
    bars: int
    stems: dict[str, np.ndarray]  # role -> float32 (2, num_samples)
    beats_per_bar: int = 4
    # the level the mix may peak at before `mix()` scales it down: the true-peak ceiling once
    # audio.loudness has leveled the stems (their sum is then under it already)
    ceiling_db: float = MIX_CEILING_DB

    @property
    def num_samples(self) -> int:
        return loop_samples(self.bars, self.bpm, self.sample_rate, self.beats_per_bar)

    @property
    def beats(self) -> int:
        return self.bars * self.beats_per_bar

    def check(self) -> None:
        """Raise RenderError when a stem breaks the stem contract (shape, length, finite)."""
        for role, audio in self.stems.items():
            if audio.ndim != 2 or audio.shape != (2, self.num_samples):
                raise RenderError(
                    f"stem {role!r}: shape {audio.shape} is not (2, {self.num_samples}) "
                    f"({self.bars} bars at {self.bpm:g} bpm, {self.sample_rate} Hz)"
                )
            if not np.isfinite(audio).all():
                raise RenderError(f"stem {role!r}: contains NaN or infinite samples")

    def mix_sum(self) -> np.ndarray:
        """The plain sum of the stems."""
        total = np.zeros((2, self.num_samples), dtype=np.float32)
        for audio in self.stems.values():
            total += audio.astype(np.float32, copy=False)
        return total

    def mix(self) -> np.ndarray:
        """The sum of the stems, scaled down only when it would peak above `ceiling_db`.

        The sample renderer already leaves headroom, and a render's stems are leveled under
        the true-peak ceiling (audio.loudness), so this is the plain sum (stems dropped into a
        DAW at unity gain reproduce mix.wav).
        """
        total = self.mix_sum()
        peak = float(np.abs(total).max(initial=0.0))
        ceiling = db_to_gain(self.ceiling_db)
        if peak > ceiling:
            total *= np.float32(ceiling / peak)
        return total
