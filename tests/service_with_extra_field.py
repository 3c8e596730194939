"""`pipeline serve` with one request field more than RunRequest has, for tests only: the browser
test runs it to prove that a field added to the request appears on the page's form (with its
label, default, bounds and help) and reaches the job, without editing the page.

Run it as a script (`python tests/service_with_extra_field.py serve ...`, as
`ExtraFieldService` in tests/test_browser.py does): the service's worker processes are started
with multiprocessing's spawn, which runs this file again in each of them (as `__mp_main__`)
before their first job, so the workers read the field too.
"""

from __future__ import annotations

import dataclasses
import sys

from stemforge.pipeline import request

EXTRA_FIELD = "humanize_ms"


@dataclasses.dataclass
class RunRequestWithExtraField(request.RunRequest):
    humanize_ms: float = request._spec(4.0, "test-only field: micro-timing spread in milliseconds", "feel",
                                       ge=0, le=30, label="Humanize ms")


# Before the CLI, the service and the workers import RunRequest: they all take it from here.
request.RunRequest = RunRequestWithExtraField

if __name__ == "__main__":
    from stemforge.pipeline.cli import main

    sys.exit(main(sys.argv[1:]))
