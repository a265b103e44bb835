"""The services layer: what a command does from end to end, above the catalog and ingest.

Each service takes a session factory, does its slow file work with no session open, then
records the outcome in one short transaction (`ingest.ingest_dataset` is the model).
Commands and tasks call these; the catalog and ingest never import them.
"""

from collections.abc import Callable

# Services report progress through two optional hooks: on_start(total), on_advance(done).
ProgressHook = Callable[[int], None]
