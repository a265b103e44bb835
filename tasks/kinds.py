"""The job kinds: one registry naming each kind's run function, queue and Celery task (jobs layer).

Adding a kind is one run function (`(JobContext) -> JobOutcome`, see tasks/lifecycle.py)
and one `register` line here, or in a module named by `DDM_JOB_MODULES` for kinds that
live outside ddm. The lifecycle (claim, heartbeat, cancel, finish, retries, the sweeper),
the Celery task, its route and inline runs come with it. Run functions are named as
"module:function" and imported on first use, so this module stays cheap enough for
`ddm --help`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ddm.errors import InvalidInput

GPU_QUEUE = "gpu"
DEFAULT_QUEUE = "default"


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    Attributes:
        name: stored in `jobs.kind` (at most 16 characters).
        run: the run function, or its "module:function" path.
        queue: the Celery queue its tasks are routed to.
        task: the Celery task name; `ddm.jobs.<name>` unless given.
    """

    name: str
    run: str | Callable[..., Any]
    queue: str = GPU_QUEUE
    task: str = field(default="")

    def __post_init__(self) -> None:
        if not 0 < len(self.name) <= 16:
            raise ValueError(f"a job kind's name has 1 to 16 characters: {self.name!r}")
        if not self.task:
            object.__setattr__(self, "task", f"ddm.jobs.{self.name}")

    def run_function(self) -> Callable[..., Any]:
        """The run function, imported now if it was given by name."""
        if callable(self.run):
            return self.run
        module, _, attribute = self.run.partition(":")
        return getattr(importlib.import_module(module), attribute)


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Add a kind (or replace the one of that name); returns it."""
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> JobKind:
    """The registered kind called `name`.

    Raises:
        InvalidInput: no such kind is registered in this process.
    """
    try:
        return _KINDS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown job kind {name!r}; this process knows {', '.join(kind_names())} "
            "(kinds from other modules are loaded through DDM_JOB_MODULES)"
        ) from None


def kind_names() -> list[str]:
    return list(_KINDS)


def all_kinds() -> list[JobKind]:
    return list(_KINDS.values())


def load_job_modules(modules: list[str]) -> None:
    """Import the modules that register further kinds (the `DDM_JOB_MODULES` setting)."""
    for module in modules:
        importlib.import_module(module)


TRAIN = register(JobKind("train", "tasks.training:run_training", queue=GPU_QUEUE))
EXTRACT = register(
    JobKind(
        "extract", "tasks.extraction:run_extraction", queue=GPU_QUEUE, task="ddm.features.extract"
    )
)
EVALUATE = register(JobKind("evaluate", "tasks.evaluation:run_evaluation", queue=GPU_QUEUE))
# One clip uploaded to `ddm serve`, scored as `ddm predict --explain` scores a file.
PREDICT = register(JobKind("predict", "tasks.uploads:run_upload_prediction", queue=GPU_QUEUE))
# The saliency maps of one catalog video with one run, asked for on its `ddm serve` page.
SALIENCY = register(JobKind("saliency", "tasks.video_saliency:run_video_saliency", queue=GPU_QUEUE))
