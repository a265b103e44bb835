"""Typed settings, read once at each entry point (catalog layer).

Sources, highest first: explicit overrides (CLI flags), the environment (`DDM_` prefix),
a TOML file (`DDM_CONFIG`, else `./ddm.toml` when present), then defaults that make a
laptop work with nothing else installed: SQLite under `DDM_HOME` and no broker.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_TOML = Path("ddm.toml")
MASK = "***"
NATIVE_LOG_LEVELS = {"OPENCV_LOG_LEVEL": "OFF", "OPENCV_FFMPEG_LOGLEVEL": "-8"}


class Settings(BaseSettings):
    """Every setting ddm reads, each with a `DDM_*` environment variable and a default."""

    model_config = SettingsConfigDict(env_prefix="DDM_", frozen=True, extra="forbid")

    home: Path = Path(".ddm")
    database_url: SecretStr | None = None
    broker_url: SecretStr | None = None
    cache_dir: Path | None = None
    weights_dir: Path | None = None
    # A mirror of the published weights files: `ddm weights fetch` downloads
    # `<weights_url>/<file name>` instead of each file's published location.
    weights_url: SecretStr | None = None
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
    # Threads decoding the next videos of an extraction job while the networks run on the
    # current one; unset: none on a CPU (the networks use every core), up to 8 beside a GPU.
    decode_workers: int | None = Field(default=None, ge=0)
    # torch.compile of the style network in extraction jobs: "auto" where it was measured
    # to pay (full backbones in bf16 on a CPU with a C++ compiler, jobs of 8 or more
    # videos), "on", or "off".
    compile: Literal["auto", "on", "off"] = "auto"
    # Comma-separated modules that register further job kinds (tasks/kinds.py).
    job_modules: str = ""
    # `ddm serve --allow-uploads`: the largest clip accepted, in MB (10^6 bytes).
    upload_max_mb: int = Field(default=500, ge=1)

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
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file())
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
    def weights_base_url(self) -> str | None:
        """The weights mirror's base URL, or None to fetch from the published locations."""
        return self.weights_url.get_secret_value() if self.weights_url else None

    @property
    def job_module_names(self) -> list[str]:
        return [name.strip() for name in self.job_modules.split(",") if name.strip()]

    def masked(self) -> dict[str, Any]:
        """Every setting as plain JSON-able values, with credentials in URLs replaced by ***."""
        return {
            "home": str(self.home),
            "database_url": mask_url(self.db_url),
            "broker_url": mask_url(self.broker) if self.broker else None,
            "cache_dir": str(self.cache_dir),
            "weights_dir": str(self.weights_dir),
            "weights_url": mask_url(self.weights_base_url) if self.weights_base_url else None,
            "debug": self.debug,
            "batch_size": self.batch_size,
            "heartbeat_seconds": self.heartbeat_seconds,
            "stale_after_seconds": self.stale_after_seconds,
            "sweep_seconds": self.sweep_seconds,
            "resend_after_seconds": self.resend_after_seconds,
            "max_attempts": self.max_attempts,
            "task_soft_time_limit": self.task_soft_time_limit,
            "task_time_limit": self.task_time_limit,
            "decode_workers": self.decode_workers,
            "compile": self.compile,
            "job_modules": self.job_modules,
            "upload_max_mb": self.upload_max_mb,
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


def config_file() -> Path:
    """The TOML file to read: `DDM_CONFIG` when set, else `./ddm.toml` (which may be absent).

    Raises:
        SetupError: `DDM_CONFIG` names something that is not a file; reading nothing
            instead would silently run on defaults the user meant to override.
    """
    from ddm.errors import SetupError

    named = os.environ.get("DDM_CONFIG", "")
    if not named:
        return DEFAULT_TOML
    path = Path(named).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise SetupError(
            f"DDM_CONFIG names {path}, which {what}; point it at a TOML file or unset it"
        )
    return path


def mask_url(url: str) -> str:
    """The URL with its password and every secret-bearing query value replaced by ***.

    The rest (scheme, user, host, path, other parameters) stays exactly as written, so
    the URL is still recognisable. Drivers take passwords from the query string too
    (`postgresql://u@h/db?password=...`), hence both places.
    """
    parts = _UrlParts.of(url)
    userinfo = None if parts.userinfo is None else _mask_userinfo(parts.userinfo)
    query = None if parts.query is None else "&".join(map(_mask_parameter, parts.query.split("&")))
    return parts.with_(userinfo=userinfo, query=query)


def redact(text: str, *urls: str | None) -> str:
    """`text` with every secret of the given URLs masked: for messages that may quote a URL
    or echo one of its values (a driver's parse error, for instance)."""
    for url in (u for u in urls if u):
        text = text.replace(url, mask_url(url))
        for secret in sorted(url_secrets(url), key=len, reverse=True):
            text = text.replace(secret, MASK)
    return text


def url_secrets(url: str) -> set[str]:
    """The password and secret query values of a URL, as written and percent-decoded."""
    parts = _UrlParts.of(url)
    query = parse_qsl(parts.query or "", keep_blank_values=True)
    found = {value for key, value in query if _is_secret(key)}
    _user, colon, password = (parts.userinfo or "").partition(":")
    if colon:
        found.add(password)
    # Messages may quote a value decoded, or re-encoded the way SQLAlchemy renders URLs.
    decoded = {unquote(value) for value in found}
    found |= decoded | {quote(value, safe="") for value in decoded}
    return {value for value in found if value}


# User-info as SQLAlchemy reads it: a password runs up to the first `@`, and may hold
# `/`, `?` or `:` unencoded.
_USERINFO = re.compile(r"(?P<prefix>[A-Za-z][\w+.-]*://)(?P<userinfo>[^:/@]*(?::[^@]*)?)@", re.S)


@dataclass(frozen=True)
class _UrlParts:
    # Split by hand rather than with urllib: urlunsplit rewrites what it does not need to
    # (`sqlite:////x` loses slashes, `sqs://?a` its `//`), and a shown URL must stay as given.
    prefix: str  # the scheme and `://` when there is user-info
    userinfo: str | None
    host_and_path: str
    query: str | None

    @classmethod
    def of(cls, url: str) -> _UrlParts:
        match = _USERINFO.match(url)
        prefix, userinfo = (match["prefix"], match["userinfo"]) if match else ("", None)
        host_and_path, qmark, query = url[match.end() if match else 0 :].partition("?")
        return cls(prefix, userinfo, host_and_path, query if qmark else None)

    def with_(self, *, userinfo: str | None, query: str | None) -> str:
        auth = "" if userinfo is None else f"{userinfo}@"
        return self.prefix + auth + self.host_and_path + ("" if query is None else f"?{query}")


# Query parameters that carry credentials in PostgreSQL (libpq), Redis/kombu and SQS URLs.
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "credential",
    "apikey",
    "api_key",
)


def _is_secret(key: str) -> bool:
    key = unquote(key).lower()
    return any(part in key for part in _SECRET_KEY_PARTS)


def _mask_userinfo(userinfo: str) -> str:
    user, colon, password = userinfo.partition(":")
    return f"{user}:{MASK}" if colon and password else userinfo


def _mask_parameter(item: str) -> str:
    key, equals, value = item.partition("=")
    return f"{key}={MASK}" if equals and value and _is_secret(key) else item


def quiet_native_logging(environ: MutableMapping[str, str] = os.environ) -> None:
    """Silence the native libraries' own stderr logging, unless the user chose a level.

    OpenCV (`[ WARN:0@...]` lines) and its FFmpeg decoder print a warning per corrupt
    file straight to stderr, through progress bars; ddm records those problems on the
    rows instead. Both read these variables once, when cv2 loads, so every entry point
    calls this first thing, before anything can import cv2; worker pool children
    inherit the environment.
    """
    for name, value in NATIVE_LOG_LEVELS.items():
        environ.setdefault(name, value)
