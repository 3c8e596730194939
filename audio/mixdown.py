"""The page's mixer applied to stems: each stem through its fader and pan, then summed as
`StemSet.mix` sums them, so the mix a producer downloads is the one they heard on the page.

The pan follows the Web Audio StereoPannerNode the page plays through (its equal-power law
for a stereo input: panning left folds some of the right channel into the left and lowers the
right, and the other way round), so download and page agree sample for sample up to float
rounding. A DAW's pan law may differ by a fraction of a dB (docs/daw.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from stemforge.audio.daw import ChannelMix
from stemforge.audio.stems import StemSet


def pan_stereo(audio: np.ndarray, pan: float) -> np.ndarray:
    """A stereo (2, samples) signal through a StereoPannerNode at `pan` (-1..1)."""
    left, right = audio[0], audio[1]
    if pan <= 0.0:
        x = (pan + 1.0) * math.pi / 2.0
        gain_left, gain_right = math.cos(x), math.sin(x)
        return np.stack([left + right * np.float32(gain_left), right * np.float32(gain_right)]).astype(np.float32)
    x = pan * math.pi / 2.0
    gain_left, gain_right = math.cos(x), math.sin(x)
    return np.stack([left * np.float32(gain_left), right + left * np.float32(gain_right)]).astype(np.float32)


def apply_channel(audio: np.ndarray, mix: ChannelMix) -> np.ndarray:
    """One stem after its fader and pan (float32, same shape)."""
    return pan_stereo(audio.astype(np.float32, copy=False) * np.float32(mix.gain), mix.pan)


def mixdown(stems: StemSet, mixer: Mapping[str, ChannelMix]) -> np.ndarray:
    """The mix of `stems` with each role's fader and pan (a role not in `mixer` at 0 dB,
    centre); scaled down only where it would peak above the mix ceiling, as `StemSet.mix`."""
    unknown = set(mixer) - set(stems.stems)
    if unknown:
        raise ValueError(f"mixer: no stem {sorted(unknown)[0]!r} in this run (it has {', '.join(stems.stems)})")
    mixed = {role: apply_channel(audio, mixer[role].check(role)) if role in mixer else audio
             for role, audio in stems.stems.items()}
    return dataclasses.replace(stems, stems=mixed).mix()
