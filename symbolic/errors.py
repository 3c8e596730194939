"""The one distinction every front end makes: a `UserError` is input a person can fix (its
message starts with the field or flag it names, then says what to do), shown as one line
(CLI `error: ...`, API 422, a failed job's reason). Anything else is a bug in stemforge:
shown with its traceback and called an internal error, never dressed as bad input."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input: a flag, a field, a file or a folder the user gave. Every stage's error
    class (ConditionError, PrepareError, RenderError, EvalError, ...) is one."""
