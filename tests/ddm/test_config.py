"""Settings: defaults, the TOML file, the environment, explicit overrides, and masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddm.config import load_settings, mask_url, quiet_native_logging, redact
from ddm.errors import SetupError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in (
        "DDM_HOME",
        "DDM_DATABASE_URL",
        "DDM_BROKER_URL",
        "DDM_CACHE_DIR",
        "DDM_WEIGHTS_DIR",
        "DDM_CONFIG",
        "DDM_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults_live_under_home() -> None:
    settings = load_settings(home="/data/ddm")
    assert settings.db_url == "sqlite:////data/ddm/ddm.sqlite3"
    assert settings.cache_dir == Path("/data/ddm/cache")
    assert settings.weights_dir == Path("/data/ddm/weights")
    assert settings.broker is None


def test_config_show_lists_every_setting() -> None:
    # `masked` is what `ddm config show` prints: a new setting must not be left out of it.
    from ddm.config import Settings

    shown = load_settings(home="/data/ddm", compile="off", decode_workers=3).masked()
    assert list(shown) == list(Settings.model_fields)
    assert (shown["compile"], shown["decode_workers"], shown["upload_max_mb"]) == ("off", 3, 500)


def test_sources_in_order_of_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "ddm.toml").write_text(
        'home = "/from/toml"\ncache_dir = "/toml/cache"\nbroker_url = "redis://toml:6379/0"\n'
    )
    monkeypatch.setenv("DDM_CACHE_DIR", "/env/cache")
    settings = load_settings(broker_url="redis://flag:6379/0")
    assert settings.home == Path("/from/toml")
    assert settings.cache_dir == Path("/env/cache")
    assert settings.broker == "redis://flag:6379/0"


def test_config_file_named_by_ddm_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('database_url = "postgresql://u@h/db"\n')
    monkeypatch.setenv("DDM_CONFIG", str(config))
    assert load_settings().db_url == "postgresql+psycopg://u@h/db"


def test_unknown_key_in_the_file_is_a_setup_error(tmp_path: Path) -> None:
    (tmp_path / "ddm.toml").write_text('databse_url = "typo"\n')
    with pytest.raises(SetupError, match="databse_url"):
        load_settings()


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.home = Path("/elsewhere")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://ddm:s3cret@db:5432/ddm", "postgresql+psycopg://ddm:***@db:5432/ddm"),
        ("redis://:pw@localhost/0", "redis://:***@localhost/0"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
        ("postgresql://u@host/db?password=pw1", "postgresql://u@host/db?password=***"),
        (
            "postgresql://u@/db?host=/run/pg&sslpassword=pw2&port=5432",
            "postgresql://u@/db?host=/run/pg&sslpassword=***&port=5432",
        ),
        ("redis://h:6379/0?Password=pw3&db=1", "redis://h:6379/0?Password=***&db=1"),
        ("rediss://h/0?ssl_keyfile_password=pw4", "rediss://h/0?ssl_keyfile_password=***"),
        ("sqs://?access_token=pw5&secret_key=pw6", "sqs://?access_token=***&secret_key=***"),
        ("postgresql://u:pw7@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("amqp://u:p%40ss@MyHost/vhost", "amqp://u:***@MyHost/vhost"),
        ("postgresql://u:pa/ss?w@h/db?port=1", "postgresql://u:***@h/db?port=1"),
        ("postgresql://h/db?options=a@b", "postgresql://h/db?options=a@b"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_redact_removes_every_secret_of_a_url_from_a_message() -> None:
    url = "postgresql://u:pw1@h/db?password=pw2&port=abc"
    message = f"cannot parse {url!r}: port 'abc' for password 'pw2' (user pw1)"
    assert redact(message, url) == (
        "cannot parse 'postgresql://u:***@h/db?password=***&port=abc': "
        "port 'abc' for password '***' (user ***)"
    )


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_ddm_config_that_is_not_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / ("absent.toml" if kind == "missing" else "a-folder")
    if kind == "folder":
        target.mkdir()
    monkeypatch.setenv("DDM_CONFIG", str(target))
    with pytest.raises(SetupError, match=f"DDM_CONFIG names {target}, which "):
        load_settings()


def test_the_default_ddm_toml_may_be_absent() -> None:
    assert not Path("ddm.toml").exists()
    assert load_settings().broker is None


def test_native_libraries_are_told_to_stay_quiet() -> None:
    environ: dict[str, str] = {}
    quiet_native_logging(environ)
    assert environ == {"OPENCV_LOG_LEVEL": "OFF", "OPENCV_FFMPEG_LOGLEVEL": "-8"}
    chosen = {"OPENCV_LOG_LEVEL": "DEBUG"}
    quiet_native_logging(chosen)
    assert chosen["OPENCV_LOG_LEVEL"] == "DEBUG", "an explicit choice is kept"
