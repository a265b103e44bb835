"""A throwaway job kind, registered in a few lines: the lifecycle is the same for every kind.

Loaded by the tests directly, and by a real `ddm worker` through DDM_JOB_MODULES.
"""

from __future__ import annotations

import time
from pathlib import Path

from ddm.errors import TransientDbError
from tasks.kinds import DEFAULT_QUEUE, JobKind, register
from tasks.lifecycle import JobContext, JobOutcome


def run_echo(context: JobContext) -> JobOutcome:
    """Count `steps` steps of `pause` seconds, then echo the message back as the result.

    With `flaky_marker` set, the first delivery fails with a transient database error
    after the claim (and leaves the marker file behind), as a dropped connection would.
    """
    params = context.params
    marker = params.get("flaky_marker")
    if marker and not Path(marker).exists():
        Path(marker).touch()
        raise TransientDbError("connection dropped (on purpose)")
    for step in range(params["steps"]):
        context.check()
        time.sleep(params.get("pause", 0))
        context.advance(event=step)
    return JobOutcome("succeeded", {"echo": params["message"], "worker": context.worker})


ECHO = register(JobKind("echo", run_echo, queue=DEFAULT_QUEUE))
