"""Unit tests of the environment settings (common, graphinator, tableinator). No servers.

Every test starts from an environment with none of the services' variables set, so the
developer's own environment cannot change the outcome. Secret files live in tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.records import DataType
from common.settings import BatchConfig, CommonSettings, SettingsError, load, redact_url
from graphinator.settings import GraphinatorSettings
from tableinator.settings import TableinatorSettings

G = GraphinatorSettings
T = TableinatorSettings
SERVICES = [G, T]
SERVICE_IDS = ["graphinator", "tableinator"]

_NAMES = {name.upper() for cls in (CommonSettings, G, T) for name in cls.model_fields} | {
    f"{name}_FILE" for name in ("AMQP_URL", "NEO4J_PASSWORD", "POSTGRES_DSN", "POSTGRES_PASSWORD")
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every variable the settings read, in any letter case."""
    for key in list(os.environ):
        if key.upper() in _NAMES:
            monkeypatch.delenv(key)


def secret_file(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return str(path)


def load_error(cls: type[CommonSettings]) -> str:
    with pytest.raises(SettingsError) as e:
        load(cls)
    message = str(e.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------------------
# defaults
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", SERVICES, ids=SERVICE_IDS)
def test_common_defaults(cls: type[CommonSettings]) -> None:
    s = load(cls)
    assert isinstance(s, cls)
    assert s.amqp_url.get_secret_value() == "amqp://discogs:discogs@127.0.0.1:5672/"
    assert s.amqp_urls() == ["amqp://discogs:discogs@127.0.0.1:5672/"]
    assert s.discogs_exchange_prefix  # see the report: should it be discogsography-discogs?
    assert s.amqp_prefetch is None
    assert s.amqp_delivery_limit == 20
    assert s.amqp_max_message_bytes == 16 * 1024 * 1024
    assert s.log_level == "INFO"
    assert s.log_format == "auto"
    assert s.shutdown_timeout == 30.0
    assert s.prefetch() == 1000
    assert s.prefetch_warning() is None


def test_graphinator_defaults() -> None:
    s = load(G)
    assert isinstance(s, G)
    assert s.neo4j_uri == "bolt://127.0.0.1:7687"
    assert s.neo4j_username == "neo4j"
    assert s.neo4j_password.get_secret_value() == "discogs-pass"
    assert s.neo4j_database == "neo4j"
    assert s.health_port == 8001
    assert s.batch() == BatchConfig(
        batch_size=500,
        flush_interval=2.0,
        max_pending=5000,
        max_concurrent_flushes=2,
        serial_types=frozenset({DataType.ARTISTS, DataType.LABELS}),
        serial_batch_size=2000,
    )


def test_tableinator_defaults() -> None:
    s = load(T)
    assert isinstance(s, T)
    assert s.postgres_dsn is None
    assert s.postgres_host == "127.0.0.1"
    assert s.postgres_port == 5432
    assert s.postgres_user == "discogs"
    assert s.postgres_password.get_secret_value() == "discogs"
    assert s.postgres_database == "discogs"
    assert s.postgres_sslmode == "prefer"
    assert s.postgres_bulk_load == "false"
    assert s.health_port == 8002
    assert s.pool_size() == 5
    assert s.batch() == BatchConfig(
        batch_size=500, flush_interval=2.0, max_pending=5000, max_concurrent_flushes=2
    )
    assert s.conninfo() == (
        "host=127.0.0.1 port=5432 user=discogs password=discogs dbname=discogs sslmode=prefer"
    )


# --------------------------------------------------------------------------------------
# every variable is read
# --------------------------------------------------------------------------------------


def _secret(name: str) -> Callable[[Any], object]:
    return lambda s: getattr(s, name).get_secret_value()


def _attr(name: str) -> Callable[[Any], object]:
    return lambda s: getattr(s, name)


def _batch(name: str) -> Callable[[Any], object]:
    return lambda s: getattr(s.batch(), name)


def _in_conninfo(part: str) -> Callable[[Any], object]:
    return lambda s: part in s.conninfo().split()


VARIABLES: list[tuple[type[CommonSettings], str, str, Callable[[Any], object], object]] = [
    (G, "AMQP_URL", "amqp://u:p@rabbit:5673/vh", _secret("amqp_url"), "amqp://u:p@rabbit:5673/vh"),
    (T, "AMQP_URL", "amqps://u:p@rabbit/", _secret("amqp_url"), "amqps://u:p@rabbit/"),
    (
        G,
        "DISCOGS_EXCHANGE_PREFIX",
        "discogsography-discogs",
        _attr("discogs_exchange_prefix"),
        "discogsography-discogs",
    ),
    (T, "DISCOGS_EXCHANGE_PREFIX", "my.prefix:1", _attr("discogs_exchange_prefix"), "my.prefix:1"),
    (G, "AMQP_PREFETCH", "1500", lambda s: s.prefetch(), 1500),
    (T, "AMQP_PREFETCH", "1500", _attr("amqp_prefetch"), 1500),
    (G, "AMQP_DELIVERY_LIMIT", "5", _attr("amqp_delivery_limit"), 5),
    (G, "AMQP_MAX_MESSAGE_BYTES", "1024", _attr("amqp_max_message_bytes"), 1024),
    (
        G,
        "NEO4J_URI",
        "neo4j+s://graph.example:7687",
        _attr("neo4j_uri"),
        "neo4j+s://graph.example:7687",
    ),
    (G, "NEO4J_USERNAME", "loader", _attr("neo4j_username"), "loader"),
    (G, "NEO4J_PASSWORD", "s3cret", _secret("neo4j_password"), "s3cret"),
    (G, "NEO4J_DATABASE", "discogs", _attr("neo4j_database"), "discogs"),
    (G, "NEO4J_BATCH_SIZE", "250", _batch("batch_size"), 250),
    (G, "NEO4J_BATCH_FLUSH_INTERVAL", "0.5", _batch("flush_interval"), 0.5),
    (G, "NEO4J_MAX_PENDING", "9000", _batch("max_pending"), 9000),
    (G, "NEO4J_MAX_CONCURRENT_FLUSHES", "4", _batch("max_concurrent_flushes"), 4),
    (G, "NEO4J_SERIAL_BATCH_SIZE", "800", _batch("serial_batch_size"), 800),
    (
        T,
        "POSTGRES_DSN",
        "postgresql://u:p@db1,db2/discogs",
        lambda s: s.conninfo(),
        "postgresql://u:p@db1,db2/discogs",
    ),
    (T, "POSTGRES_HOST", "db.example", _in_conninfo("host=db.example"), True),
    (T, "POSTGRES_PORT", "6432", _in_conninfo("port=6432"), True),
    (T, "POSTGRES_USER", "loader", _in_conninfo("user=loader"), True),
    (T, "POSTGRES_PASSWORD", "s3cret", _in_conninfo("password=s3cret"), True),
    (T, "POSTGRES_DATABASE", "dg", _in_conninfo("dbname=dg"), True),
    (T, "POSTGRES_SSLMODE", "verify-full", _in_conninfo("sslmode=verify-full"), True),
    (T, "POSTGRES_BATCH_SIZE", "250", _batch("batch_size"), 250),
    (T, "POSTGRES_BATCH_FLUSH_INTERVAL", "0.5", _batch("flush_interval"), 0.5),
    (T, "POSTGRES_MAX_PENDING", "9000", _batch("max_pending"), 9000),
    (T, "POSTGRES_MAX_CONCURRENT_FLUSHES", "7", lambda s: s.pool_size(), 10),
    (T, "POSTGRES_BULK_LOAD", "TRUE", _attr("postgres_bulk_load"), "true"),
    (G, "LOG_LEVEL", "debug", _attr("log_level"), "DEBUG"),
    (T, "LOG_LEVEL", "Warning", _attr("log_level"), "WARNING"),
    (G, "LOG_FORMAT", "json", _attr("log_format"), "json"),
    (T, "LOG_FORMAT", "console", _attr("log_format"), "console"),
    (G, "HEALTH_PORT", "9100", _attr("health_port"), 9100),
    (T, "HEALTH_PORT", "0", _attr("health_port"), 0),
    (G, "SHUTDOWN_TIMEOUT", "5", _attr("shutdown_timeout"), 5.0),
    (G, "neo4j_batch_size", "300", _batch("batch_size"), 300),  # names are case-insensitive
]


@pytest.mark.parametrize(
    ("cls", "name", "value", "read", "expected"),
    VARIABLES,
    ids=[f"{cls.__name__}-{name}" for cls, name, *_ in VARIABLES],
)
def test_variable_is_read(
    monkeypatch: pytest.MonkeyPatch,
    *,
    cls: type[CommonSettings],
    name: str,
    value: str,
    read: Callable[[Any], object],
    expected: object,
) -> None:
    monkeypatch.setenv(name, value)
    assert read(load(cls)) == expected


def test_multiple_amqp_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://a:pw1@h1/, amqp://a:pw2@h2:5673/")
    assert load(G).amqp_urls() == ["amqp://a:pw1@h1/", "amqp://a:pw2@h2:5673/"]


@pytest.mark.parametrize(
    "uri",
    [
        "bolt://h:7687",
        "bolt+s://h",
        "bolt+ssc://h",
        "neo4j://h",
        "neo4j+s://h:7687",
        "neo4j+ssc://h",
    ],
)
def test_neo4j_uri_schemes(monkeypatch: pytest.MonkeyPatch, uri: str) -> None:
    monkeypatch.setenv("NEO4J_URI", uri)
    settings = load(G)
    assert isinstance(settings, G)
    assert settings.neo4j_uri == uri


def test_postgres_dsn_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_DSN", "host=a dbname=b")
    monkeypatch.setenv("POSTGRES_HOST", "ignored")
    settings = load(T)
    assert isinstance(settings, T)
    assert settings.conninfo() == "host=a dbname=b"


# --------------------------------------------------------------------------------------
# prefetch
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "prefix"), [(G, "NEO4J"), (T, "POSTGRES")], ids=SERVICE_IDS)
@pytest.mark.parametrize("size", [1, 10, 500, 5000])
def test_prefetch_defaults_to_twice_the_batch_size(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], prefix: str, size: int
) -> None:
    monkeypatch.setenv(f"{prefix}_BATCH_SIZE", str(size))
    monkeypatch.setenv(f"{prefix}_MAX_PENDING", str(max(size, 5000)))
    s = load(cls)
    assert s.prefetch() == 2 * size
    assert s.prefetch_warning() is None


@pytest.mark.parametrize(("size", "serial", "expected"), [(500, 2000, 2000), (3000, 2000, 3000)])
def test_serial_types_write_up_to_the_serial_batch_size(
    monkeypatch: pytest.MonkeyPatch, size: int, serial: int, expected: int
) -> None:
    """Artists and labels (graphinator's serial types) write up to the serial batch size."""
    monkeypatch.setenv("NEO4J_BATCH_SIZE", str(size))
    monkeypatch.setenv("NEO4J_SERIAL_BATCH_SIZE", str(serial))
    s = load(G).batch()
    assert s.largest_write(DataType.ARTISTS) == s.largest_write(DataType.LABELS) == expected
    assert s.largest_write(DataType.MASTERS) == size
    assert load(T).batch().largest_write(DataType.ARTISTS) == 500


@pytest.mark.parametrize(("cls", "prefix"), [(G, "NEO4J"), (T, "POSTGRES")], ids=SERVICE_IDS)
@pytest.mark.parametrize("prefetch", [1, 10, 499])
def test_prefetch_below_the_batch_size_warns(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], prefix: str, prefetch: int
) -> None:
    monkeypatch.setenv("AMQP_PREFETCH", str(prefetch))
    monkeypatch.setenv(f"{prefix}_BATCH_SIZE", "500")
    s = load(cls)
    assert s.prefetch() == prefetch
    warning = s.prefetch_warning()
    assert warning is not None
    assert f"AMQP_PREFETCH={prefetch}" in warning
    assert "500" in warning


@pytest.mark.parametrize("prefetch", [500, 501, 1000, 65535])
def test_prefetch_at_least_the_batch_size_does_not_warn(
    monkeypatch: pytest.MonkeyPatch, prefetch: int
) -> None:
    monkeypatch.setenv("AMQP_PREFETCH", str(prefetch))
    s = load(G)
    assert s.prefetch() == prefetch
    assert s.prefetch_warning() is None


def test_default_prefetch_fits_in_amqp_qos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_BATCH_SIZE", "40000")
    monkeypatch.setenv("NEO4J_MAX_PENDING", "100000")
    assert load(G).prefetch() <= 65535


# --------------------------------------------------------------------------------------
# bad values
# --------------------------------------------------------------------------------------

BAD: list[tuple[type[CommonSettings], str, str]] = [
    (G, "AMQP_URL", "not a url"),
    (G, "AMQP_URL", "http://u:p@rabbit/"),
    (G, "AMQP_URL", "amqp://"),
    (G, "AMQP_URL", "amqp://u:p@/vhost"),
    (T, "AMQP_URL", "amqp://ok/,redis://h/"),
    (T, "AMQP_URL", ""),
    (G, "DISCOGS_EXCHANGE_PREFIX", ""),
    (G, "DISCOGS_EXCHANGE_PREFIX", "has space"),
    (T, "DISCOGS_EXCHANGE_PREFIX", "a/b"),
    (G, "AMQP_PREFETCH", "0"),
    (G, "AMQP_PREFETCH", "-1"),
    (G, "AMQP_PREFETCH", "65536"),
    (G, "AMQP_PREFETCH", "ten"),
    (G, "AMQP_DELIVERY_LIMIT", "0"),
    (G, "AMQP_MAX_MESSAGE_BYTES", "-5"),
    (G, "NEO4J_URI", "http://graph:7474"),
    (G, "NEO4J_URI", "bolt://"),
    (G, "NEO4J_URI", "localhost:7687"),
    (G, "NEO4J_BATCH_SIZE", "-1"),
    (G, "NEO4J_BATCH_SIZE", "0"),
    (G, "NEO4J_BATCH_SIZE", "100001"),
    (G, "NEO4J_BATCH_SIZE", "1.5"),
    (G, "NEO4J_BATCH_SIZE", "many"),
    (G, "NEO4J_BATCH_FLUSH_INTERVAL", "0"),
    (G, "NEO4J_BATCH_FLUSH_INTERVAL", "-2"),
    (G, "NEO4J_BATCH_FLUSH_INTERVAL", "inf"),
    (G, "NEO4J_BATCH_FLUSH_INTERVAL", "soon"),
    (G, "NEO4J_MAX_PENDING", "0"),
    (G, "NEO4J_MAX_CONCURRENT_FLUSHES", "0"),
    (G, "NEO4J_MAX_CONCURRENT_FLUSHES", "65"),
    (G, "NEO4J_SERIAL_BATCH_SIZE", "0"),
    (G, "NEO4J_SERIAL_BATCH_SIZE", "100001"),
    (T, "POSTGRES_PORT", "0"),
    (T, "POSTGRES_PORT", "70000"),
    (T, "POSTGRES_SSLMODE", "maybe"),
    (T, "POSTGRES_BATCH_SIZE", "-5"),
    (T, "POSTGRES_BATCH_FLUSH_INTERVAL", "0"),
    (T, "POSTGRES_MAX_PENDING", "-1"),
    (T, "POSTGRES_MAX_CONCURRENT_FLUSHES", "0"),
    (T, "POSTGRES_BULK_LOAD", "sometimes"),
    (G, "LOG_LEVEL", "verbose"),
    (T, "LOG_LEVEL", "trace"),
    (G, "LOG_FORMAT", "xml"),
    (G, "HEALTH_PORT", "-1"),
    (T, "HEALTH_PORT", "65536"),
    (T, "HEALTH_PORT", "http"),
    (G, "SHUTDOWN_TIMEOUT", "0"),
]


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    BAD,
    ids=[f"{cls.__name__}-{name}={value}" for cls, name, value in BAD],
)
def test_bad_value_raises_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    message = load_error(cls)
    assert name in message


@pytest.mark.parametrize(("cls", "prefix"), [(G, "NEO4J"), (T, "POSTGRES")], ids=SERVICE_IDS)
@pytest.mark.parametrize(("size", "pending"), [("500", "499"), ("1000", "10"), ("2", "1")])
def test_max_pending_below_the_batch_size_is_an_error(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], prefix: str, size: str, pending: str
) -> None:
    monkeypatch.setenv(f"{prefix}_BATCH_SIZE", size)
    monkeypatch.setenv(f"{prefix}_MAX_PENDING", pending)
    message = load_error(cls)
    assert "MAX_PENDING" in message
    assert size in message
    assert pending in message


@pytest.mark.parametrize(("cls", "prefix"), [(G, "NEO4J"), (T, "POSTGRES")], ids=SERVICE_IDS)
def test_max_pending_error_names_the_service_variable(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], prefix: str
) -> None:
    monkeypatch.setenv(f"{prefix}_MAX_PENDING", "10")
    assert f"{prefix}_MAX_PENDING" in load_error(cls)


@pytest.mark.parametrize(("cls", "prefix"), [(G, "NEO4J"), (T, "POSTGRES")], ids=SERVICE_IDS)
def test_max_pending_equal_to_the_batch_size_is_fine(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], prefix: str
) -> None:
    monkeypatch.setenv(f"{prefix}_BATCH_SIZE", "800")
    monkeypatch.setenv(f"{prefix}_MAX_PENDING", "800")
    assert load(cls).batch().max_pending == 800


def test_max_pending_of_the_other_service_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_MAX_PENDING", "1")
    monkeypatch.setenv("POSTGRES_BATCH_SIZE", "-1")
    assert load(G).batch().max_pending == 5000


def test_several_bad_values_are_reported_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEO4J_BATCH_SIZE", "-1")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    message = load_error(G)
    assert "NEO4J_BATCH_SIZE" in message
    assert "LOG_LEVEL" in message


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_amqp_url_with_a_bad_port_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@rabbit:notaport/")
    assert "AMQP_URL" in load_error(G)


# --------------------------------------------------------------------------------------
# secrets: *_FILE variables and redaction
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "name", "read"),
    [
        (G, "NEO4J_PASSWORD", _secret("neo4j_password")),
        (T, "POSTGRES_PASSWORD", _secret("postgres_password")),
        (T, "POSTGRES_DSN", lambda s: s.conninfo()),
    ],
)
@pytest.mark.parametrize("newline", ["", "\n", "\r\n"], ids=["bare", "lf", "crlf"])
def test_secret_file_is_read(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    cls: type[CommonSettings],
    name: str,
    read: Callable[[Any], object],
    newline: str,
) -> None:
    secret = "host=db password=f1le-secret" if name == "POSTGRES_DSN" else "f1le-secret"
    monkeypatch.setenv(f"{name}_FILE", secret_file(tmp_path, "secret", secret + newline))
    s = load(cls)
    assert read(s) == secret
    assert "f1le-secret" not in repr(s)
    assert "f1le-secret" not in str(s)


@pytest.mark.parametrize("cls", SERVICES, ids=SERVICE_IDS)
def test_amqp_url_file_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[CommonSettings]
) -> None:
    url = "amqp://loader:f1le-secret@rabbit:5672/discogs"
    monkeypatch.setenv("AMQP_URL_FILE", secret_file(tmp_path, "amqp", url + "\n"))
    s = load(cls)
    assert s.amqp_urls() == [url]
    assert "f1le-secret" not in repr(s)
    assert "f1le-secret" not in str(s)


def test_postgres_password_file_reaches_the_conninfo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD_FILE", secret_file(tmp_path, "pw", "f1le-secret\n"))
    settings = load(T)
    assert isinstance(settings, T)
    assert "password=f1le-secret" in settings.conninfo().split()


def test_explicit_variable_wins_over_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEO4J_PASSWORD", "from-env")
    monkeypatch.setenv("NEO4J_PASSWORD_FILE", secret_file(tmp_path, "pw", "from-file"))
    settings = load(G)
    assert isinstance(settings, G)
    assert settings.neo4j_password.get_secret_value() == "from-env"


@pytest.mark.parametrize("name", ["NEO4J_PASSWORD", "AMQP_URL", "POSTGRES_PASSWORD"])
def test_unreadable_secret_file_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str
) -> None:
    monkeypatch.setenv(f"{name}_FILE", str(tmp_path / "missing"))
    message = load_error(T if name.startswith("POSTGRES") else G)
    assert f"{name}_FILE" in message
    assert "missing" in message


def test_secret_file_that_is_a_directory_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NEO4J_PASSWORD_FILE", str(tmp_path))
    assert "NEO4J_PASSWORD_FILE" in load_error(G)


@pytest.mark.parametrize(
    ("cls", "env"),
    [
        (G, {"NEO4J_PASSWORD": "hunter2-secret"}),
        (G, {"AMQP_URL": "amqp://u:hunter2-secret@rabbit/"}),
        (T, {"POSTGRES_PASSWORD": "hunter2-secret"}),
        (T, {"POSTGRES_DSN": "postgresql://u:hunter2-secret@db/discogs"}),
        (T, {"AMQP_URL": "amqp://u:p@h1/,amqps://u:hunter2-secret@h2/"}),
    ],
)
def test_secrets_never_appear_in_repr(
    monkeypatch: pytest.MonkeyPatch, cls: type[CommonSettings], env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load(cls)
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert "hunter2-secret" not in text


@pytest.mark.parametrize(
    ("cls", "secret_var", "secret", "bad_var", "bad"),
    [
        (G, "NEO4J_PASSWORD", "hunter2-secret", "NEO4J_BATCH_SIZE", "-1"),
        (G, "AMQP_URL", "http://u:hunter2-secret@rabbit/", "LOG_LEVEL", "info"),
        (T, "POSTGRES_PASSWORD", "hunter2-secret", "POSTGRES_MAX_PENDING", "1"),
        (T, "AMQP_URL", "amqp://u:hunter2-secret@/", "LOG_LEVEL", "info"),
        (T, "POSTGRES_DSN", "postgresql://u:hunter2-secret@db/x", "POSTGRES_SSLMODE", "bad"),
    ],
)
@pytest.mark.parametrize("via_file", [False, True], ids=["env", "file"])
def test_secrets_never_appear_in_settings_errors(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    cls: type[CommonSettings],
    secret_var: str,
    secret: str,
    bad_var: str,
    bad: str,
    via_file: bool,
) -> None:
    if via_file:
        monkeypatch.setenv(f"{secret_var}_FILE", secret_file(tmp_path, "s", secret))
    else:
        monkeypatch.setenv(secret_var, secret)
    monkeypatch.setenv(bad_var, bad)
    with pytest.raises(SettingsError) as e:
        load(cls)
    assert "hunter2-secret" not in str(e.value)
    assert "hunter2-secret" not in repr(e.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://u:p@rabbit:5672/vh", "amqp://u:***@rabbit:5672/vh"),
        ("amqp://u:p@rabbit/", "amqp://u:***@rabbit/"),
        ("amqps://user:hunter2@rabbit.example/%2F", "amqps://user:***@rabbit.example/%2F"),
        ("amqp://:p@rabbit/", "amqp://:***@rabbit/"),
        (
            "postgresql://u:p@db:5432/x?sslmode=require",
            "postgresql://u:***@db:5432/x?sslmode=require",
        ),
        ("amqp://u@rabbit/", "amqp://u@rabbit/"),
        ("amqp://rabbit:5672/", "amqp://rabbit:5672/"),
        ("bolt://h", "bolt://h"),
        ("host=db dbname=x", "host=db dbname=x"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize("url", ["amqp://u:p%40ss@rabbit/", "amqp://u:p:q@rabbit/"])
def test_redact_url_hides_odd_passwords(url: str) -> None:
    redacted = redact_url(url)
    assert "***" in redacted
    for part in ("p%40ss", "p:q"):
        assert part not in redacted


def test_redact_url_keeps_ipv6_brackets() -> None:
    assert redact_url("amqp://u:p@[::1]:5672/") == "amqp://u:***@[::1]:5672/"


def test_redact_url_hides_every_password_of_a_cluster_url() -> None:
    assert "pw2" not in redact_url("amqp://u:pw1@h1/,amqp://u:pw2@h2/")


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("amqp://u:secret@h:port/", "secret"),
        ("amqp://u:sec#ret@h/", "sec#ret"),
        ("amqp://u:sec/ret@h/", "sec/ret"),
        ("amqp://u:s?ecret@h/", "s?ecret"),
    ],
)
def test_redact_url_never_raises_nor_leaks(url: str, password: str) -> None:
    assert password not in redact_url(url)
