"""The domain error hierarchy shared by every layer above the catalog.

The CLI maps these classes to exit codes in one place (`cli/main.py`).
"""


class DdmError(Exception):
    """Base class of every error ddm raises on purpose."""


class NotFound(DdmError, LookupError):
    """A named dataset, video, job or run does not exist."""


class AlreadyExists(DdmError):
    """A row with the same natural key already exists."""


class InvalidInput(DdmError, ValueError):
    """The user gave input ddm cannot use (a bad path, an unknown format)."""


class SetupError(DdmError):
    """The environment is not usable: bad configuration, missing weights, no database."""


class StorageProblem(SetupError):
    """A folder ddm must write to is full, read-only or forbidden (exit 3, naming it)."""


class SchemaOutOfDate(SetupError):
    """The database schema revision differs from the one this code expects."""


class DatabaseUnavailable(SetupError):
    """The database URL is malformed or the server cannot be reached."""


class TransientDbError(DdmError):
    """A database error worth retrying (connection dropped, lock timeout)."""


class StaleIngest(DdmError):
    """Another ingest of the dataset recorded after this one read the catalog."""
