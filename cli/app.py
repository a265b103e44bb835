"""The context object every command receives (CLI layer).

Settings, the engine and the session factory are built on first use, so `--help` and
commands that never touch the catalog stay instant.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from ddm.config import Settings


class App:
    """What a command needs: settings, consoles, and the catalog behind a schema check."""

    def __init__(self, overrides: dict[str, Any], *, quiet: bool = False) -> None:
        self._overrides = overrides
        self.quiet = quiet

    @cached_property
    def settings(self) -> Settings:
        from ddm.config import load_settings

        return load_settings(**self._overrides)

    @cached_property
    def out(self) -> Console:
        """Data: tables and JSON on stdout."""
        from rich.console import Console

        return Console(soft_wrap=True)

    @cached_property
    def err(self) -> Console:
        """Status, progress and warnings on stderr, so stdout stays parseable."""
        from rich.console import Console

        return Console(stderr=True, quiet=self.quiet)

    @cached_property
    def engine(self) -> Engine:
        from ddm.db import create_db_engine

        return create_db_engine(self.settings.db_url)

    @cached_property
    def session_factory(self) -> sessionmaker[Session]:
        """Sessions on a catalog whose schema matches this code (checked once)."""
        from ddm.db import make_session_factory, verify_schema

        verify_schema(self.engine)
        return make_session_factory(self.engine)

    def session(self):  # noqa: ANN201  (a context manager yielding a Session)
        """One unit of work: `with app.session() as session: ...` commits on success."""
        from ddm.db import session_scope

        return session_scope(self.session_factory)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
