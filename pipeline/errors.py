"""The pipeline's error for bad run input, in a module of its own: the request and the
renderers both raise it, and the request imports the renderers (its choices of renderer)."""

from __future__ import annotations

from stemforge.symbolic.core.errors import UserError


class RunError(UserError):
    """Bad run input; the message names the flag/file and what to do."""
