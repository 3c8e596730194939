"""The sampling settings of a request (temperature, top-k, top-p, key bias) and their check:
kept apart from the sampler so that checking a request loads no torch (the CLI's flags, the
service's main process)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from stemforge.symbolic.core.errors import UserError

# Which code runs the model: "int8" (one numba function per decode step over the weights and KV
# cache rounded to int8 with their scales, the default: each step reads 5 MB of weights instead of
# 19 and a quarter of the cache), "compiled" (the same function over the float32 weights and
# cache) or "torch" (the float32 weights through torch calls). They sample nearly the same distribution, but
# a logit that differs in its last bits can change a token, so a seed's notes are reproducible
# within one decoder only, and run.json names it.
DECODERS: tuple[str, ...] = ("int8", "compiled", "torch")


class SettingsError(UserError):
    """A sampling setting out of range (the message names the flag)."""


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 0.95  # 1.0 = off
    key_bias: float = 1.5  # nats added to in-key pitches of bass and melody (0 = off)
    decoder: str = "int8"  # one of DECODERS

    def validate(self) -> SamplingSettings:
        for name, value in (("temperature", self.temperature), ("top-p", self.top_p), ("key-bias", self.key_bias)):
            if not math.isfinite(value):
                raise SettingsError(f"{name}: {value} is not a number; give a finite value",
                                    field=name.replace("-", "_"))
        if self.temperature <= 0:
            raise SettingsError(f"temperature: {self.temperature} must be > 0", field="temperature")
        if self.top_k < 0:
            raise SettingsError(f"top-k: {self.top_k} must be >= 0 (0 switches it off)", field="top_k")
        if not 0 < self.top_p <= 1:
            raise SettingsError(f"top-p: {self.top_p} must be in (0, 1]", field="top_p")
        if self.key_bias < 0:
            raise SettingsError(f"key-bias: {self.key_bias} must be >= 0 (0 switches it off)", field="key_bias")
        if self.decoder not in DECODERS:
            raise SettingsError(f"decoder: {self.decoder!r} is not a decoder; use {' or '.join(DECODERS)}",
                                field="decoder")
        return self
