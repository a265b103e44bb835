"""Typed settings, read once at each entry point (catalog layer).

Sources, highest first: explicit overrides (CLI flags), the environment (`DDM_` prefix),
a TOML file (`DDM_CONFIG`, else `./ddm.toml` when present), then defaults that make a
laptop work with nothing else installed: SQLite under `DDM_HOME` and no broker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_TOML = Path("ddm.toml")
MASK = "***"


class Settings(BaseSettings):
    """Every setting ddm reads, each with a `DDM_*` environment variable and a default."""

    model_config = SettingsConfigDict(env_prefix="DDM_", frozen=True, extra="forbid")

    home: Path = Path(".ddm")
    database_url: SecretStr | None = None
    broker_url: SecretStr | None = None
    cache_dir: Path | None = None
    weights_dir: Path | None = None
    debug: bool = False
    # Jobs. A batch is the unit of work one task covers: a crash loses at most one batch.
    batch_size: int = Field(default=16, ge=1)
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    # A running job whose heartbeat is older than this is presumed dead and re-submitted.
    stale_after_seconds: float = Field(default=120.0, gt=0)
    sweep_seconds: float = Field(default=30.0, gt=0)
    # A queued job no worker claimed this long after it was sent is sent again: the broker
    # may have lost it (a restart without persistence). Duplicates are harmless.
    resend_after_seconds: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    task_soft_time_limit: int = Field(default=6 * 3600, gt=0)
    task_time_limit: int = Field(default=6 * 3600 + 300, gt=0)
    # Comma-separated modules that register further job kinds (tasks/kinds.py).
    job_modules: str = ""

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        # Frozen models cannot be assigned normally; derived defaults are filled once here.
        home = self.home.expanduser()
        object.__setattr__(self, "home", home)
        if self.stale_after_seconds <= 2 * self.heartbeat_seconds:
            raise ValueError("stale_after_seconds must exceed twice heartbeat_seconds")
        if self.database_url is None:
            url = f"sqlite:///{(home / 'ddm.sqlite3').as_posix()}"
            object.__setattr__(self, "database_url", SecretStr(url))
        object.__setattr__(self, "cache_dir", (self.cache_dir or home / "cache").expanduser())
        object.__setattr__(self, "weights_dir", (self.weights_dir or home / "weights").expanduser())
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("DDM_CONFIG", DEFAULT_TOML))
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return (init_settings, env_settings, toml)

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL, with `postgresql://` pointed at the psycopg 3 driver we ship."""
        assert self.database_url is not None  # filled by _derive_defaults
        return normalise_database_url(self.database_url.get_secret_value())

    @property
    def broker(self) -> str | None:
        """The Celery broker URL, or None when jobs run inline."""
        return self.broker_url.get_secret_value() if self.broker_url else None

    @property
    def job_module_names(self) -> list[str]:
        return [name.strip() for name in self.job_modules.split(",") if name.strip()]

    def masked(self) -> dict[str, Any]:
        """Every setting as plain JSON-able values, with passwords in URLs replaced by ***."""
        return {
            "home": str(self.home),
            "database_url": mask_url(self.db_url),
            "broker_url": mask_url(self.broker) if self.broker else None,
            "cache_dir": str(self.cache_dir),
            "weights_dir": str(self.weights_dir),
            "debug": self.debug,
            "batch_size": self.batch_size,
            "heartbeat_seconds": self.heartbeat_seconds,
            "stale_after_seconds": self.stale_after_seconds,
            "sweep_seconds": self.sweep_seconds,
            "resend_after_seconds": self.resend_after_seconds,
            "max_attempts": self.max_attempts,
            "task_soft_time_limit": self.task_soft_time_limit,
            "task_time_limit": self.task_time_limit,
            "job_modules": self.job_modules,
        }


def load_settings(**overrides: Any) -> Settings:
    """Build the settings object; `overrides` (CLI flags) win over every other source.

    Raises:
        SetupError: the TOML file or an environment value is invalid.
    """
    from pydantic import ValidationError

    from ddm.errors import SetupError

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise SetupError(f"invalid setting {where}: {first['msg']}") from None
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read the configuration file: {exc}") from None


def normalise_database_url(url: str) -> str:
    """Map the plain `postgresql://` and `postgres://` schemes onto the psycopg 3 driver."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def mask_url(url: str) -> str:
    """Replace the password of a URL with *** (the rest stays readable)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
