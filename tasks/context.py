"""Per-process resources for tasks: the catalog engine and the built extractor (jobs layer).

Built on first use in the process that runs tasks (a worker child or the CLI running jobs
inline), never at import, so a forked worker child opens its own connections and
initialises CUDA itself.
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ddm.db import create_db_engine, make_session_factory, verify_schema

_engines: dict[str, Engine] = {}


def session_factory(url: str) -> sessionmaker[Session]:
    """Sessions on the catalog at `url`, one engine per process, schema checked once."""
    engine = _engines.get(url)
    if engine is None:
        engine = create_db_engine(url)
        verify_schema(engine)
        _engines[url] = engine
    return make_session_factory(engine)


def forget_engines() -> None:
    """Drop engines inherited over fork without closing the parent's connections."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()


def worker_name() -> str:
    """Who is running a job: host and process id, as the jobs table records it."""
    return f"{socket.gethostname()}:{os.getpid()}"
