"""The one distinction every front end makes: a `UserError` is input a person can fix (its
message starts with the field or flag it names, then says what to do), shown as one line
(CLI `error: ...`, API 422, a failed job's reason). Anything else is a bug in stemforge:
shown with its traceback and called an internal error, never dressed as bad input."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a flag, a field, a file or a folder the user gave. Every stage's error
    class (ConditionError, PrepareError, RenderError, EvalError, ...) is one. `field` names
    the request field at fault where the raiser knows it (the API's 422 points at it); a
    class may give a default (ChordError: "chords")."""

    field: str | None = None

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


def context_overflow(max_tokens: int) -> UserError:
    """A piece that does not fit the model's context (either decoder refuses it the same way)."""
    return UserError(f"the piece needs more than the model's context of {max_tokens} tokens: ask for fewer --bars "
                     "or a sparser density, use a shorter --seed-midi, or train a model with a larger n_positions "
                     "(the `small` config holds 2048)")


class ConditionError(UserError):
    """A prompt or flag value that cannot be composed; the message names the field."""
