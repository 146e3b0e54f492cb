"""Security: values are parameters, identifiers come from fixed lists, credentials never
leak into logs, /health or /metrics, and TLS is configurable for all three servers."""

from __future__ import annotations

import ast
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from common.records import DataType
from graphinator import cypher
from graphinator.settings import GraphinatorSettings
from tableinator.settings import TableinatorSettings
from tests import servers
from tests.faults import harness
from tests.faults.harness import Case, Dataset, Reliability

pytestmark = [pytest.mark.faults]

# Text that marks a formatted string as SQL or Cypher.
_QUERY_WORDS = (
    "MATCH ",
    "MERGE ",
    "CREATE ",
    "INSERT ",
    "SELECT ",
    "UNWIND ",
    "DELETE",
    "DROP ",
    "SET ",
    "COPY ",
    "WHERE ",
    "RETURN ",
    "->>",
    "->'",
    "ANALYZE",
)
# The interpolations allowed in query text: (file, expression), each a name bound only to a
# member of a fixed list of labels, relationship types, keys, patterns or table columns.
ALLOWED = {
    ("graphinator/cypher.py", "label"),
    ("graphinator/cypher.py", "label.lower()"),
    ("graphinator/cypher.py", "key"),
    ("graphinator/cypher.py", "pattern"),
    ("graphinator/cypher.py", "pattern.format(rel=rel)"),
    ("graphinator/cypher.py", "rel"),
    ("graphinator/cypher.py", "flag"),
    ("graphinator/cypher.py", "side_name"),  # _unflag: a name property of names.SIDE
    ("graphinator/cypher.py", "other"),
    ("graphinator/cypher.py", "src"),
    ("graphinator/cypher.py", "dst"),
    ("graphinator/cypher.py", "props"),
    ("graphinator/cypher.py", "STATE"),
    ("graphinator/cypher.py", "KEEP_PLAN"),  # the constant query option "CYPHER replan=skip "
    ("graphinator/cypher.py", "var"),  # _seek: checked against its fixed variable names
    ("graphinator/cypher.py", "value"),  # _seek: checked against row.id / row.src / row.dst
    ("graphinator/cypher.py", "one"),
    ("graphinator/cypher.py", "stale.format(v='$version')"),
    ("graphinator/cypher.py", "stale.format(v='row.version')"),
    ("graphinator/cypher.py", "owner"),  # _links: checked against the node labels
    ("graphinator/cypher.py", "create"),  # _links: the constant placeholder clause or ""
    ("graphinator/cypher.py", "''.join(actions)"),  # _links: constant clauses, via _when
    ("graphinator/cypher.py", "kind"),  # _when: checked against KINDS
    ("graphinator/cypher.py", "action"),  # _when: a constant clause
    ("tableinator/sql.py", "field"),
}
# Functions that build query text from fixed names (their own bodies are scanned like any
# other): a call of one is allowed when every argument is a string constant or an allowed name.
ALLOWED_BUILDERS = {("graphinator/cypher.py", "_seek")}
# The label constants of graphinator/cypher.py: its names whose values are keyed labels.
_LABEL_CONSTANTS = frozenset(
    name
    for name, value in vars(cypher).items()
    if name.isupper() and isinstance(value, str) and value in {label for label, _ in cypher._KEYS}
)
# psycopg sql.SQL() over a non-literal: allowed only for these fixed-definition values.
ALLOWED_SQL_CALLS = {
    ("tableinator/sql.py", "' ' + index.opclass"),
    ("tableinator/sql.py", "index.expression"),
}


def _sources() -> Iterator[tuple[str, ast.AST]]:
    for package in ("graphinator", "tableinator"):
        for path in sorted((harness.ROOT / package).glob("*.py")):
            rel = path.relative_to(harness.ROOT).as_posix()
            yield rel, ast.parse(path.read_text(), filename=rel)


def _const_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ""


def _is_query(text: str) -> bool:
    return any(word in text for word in _QUERY_WORDS)


def query_interpolations() -> list[tuple[str, int, str]]:  # noqa: C901 - one AST walk
    """(file, line, expression) of every value formatted into SQL or Cypher text."""
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr) and _is_query(_const_text(node)):
                for part in node.values:
                    if isinstance(part, ast.FormattedValue):
                        found.append((rel, node.lineno, ast.unparse(part.value)))
            elif (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.Mod | ast.Add)
                and (_is_query(_const_text(node.left)) or _is_query(_const_text(node.right)))
            ):
                other = node.right if _is_query(_const_text(node.left)) else node.left
                if not (isinstance(other, ast.Constant) or _const_text(other)):
                    found.append((rel, node.lineno, ast.unparse(other)))
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "format"
                and _is_query(_const_text(node.func.value))
            ):
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if not _is_sql_composable(arg):
                        found.append((rel, node.lineno, ast.unparse(arg)))
    return found


def _is_sql_composable(node: ast.AST) -> bool:
    """psycopg's ``sql.SQL(...).format(...)`` quotes Identifier/Literal arguments itself."""
    text = ast.unparse(node)
    return text.startswith(
        (
            "sql.",
            "spec.",
            "STATE_TABLE",
            "_METHODS[",
            "opclass",
            "year",
            "staged",
            "updates",
            "t=",
            "cols",
            "stage",
        )
    )


def sql_calls_over_values() -> list[tuple[str, int, str]]:
    """(file, line, argument) of every ``sql.SQL(x)`` whose x is not a literal."""
    found = []
    for rel, tree in _sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and ast.unparse(node.func) == "sql.SQL"
                and node.args
                and not (isinstance(node.args[0], ast.Constant))
            ):
                found.append((rel, node.lineno, ast.unparse(node.args[0])))
    return found


def _allowed(rel: str, expression: str) -> bool:
    """An allowed name, or a call of an allowed builder over constants and allowed names."""
    if (rel, expression) in ALLOWED:
        return True
    call = ast.parse(expression, mode="eval").body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
        return False
    if (rel, call.func.id) not in ALLOWED_BUILDERS:
        return False
    args = [*call.args, *(k.value for k in call.keywords)]
    return all(
        (isinstance(a, ast.Constant) and isinstance(a.value, str))
        or (rel, ast.unparse(a)) in ALLOWED
        or (isinstance(a, ast.Name) and a.id in _LABEL_CONSTANTS)
        for a in args
    )


def test_static_every_query_value_is_a_parameter() -> None:
    interpolated = query_interpolations()
    assert interpolated, "the scan found no query text at all: it is broken"
    unknown = [(f, line, e) for f, line, e in interpolated if not _allowed(f, e)]
    assert not unknown, f"values formatted into SQL/Cypher (use a parameter): {unknown}"
    raw = [
        (f, line, e) for f, line, e in sql_calls_over_values() if (f, e) not in ALLOWED_SQL_CALLS
    ]
    assert not raw, f"sql.SQL() over a non-constant: {raw}"


def test_tls_is_configurable() -> None:
    common = {"_env_file": None}
    for uri in (
        "neo4j+s://db.example.com:7687",
        "bolt+s://db.example.com:7687",
        "neo4j+ssc://db.example.com",
        "bolt+ssc://db.example.com",
    ):
        assert GraphinatorSettings(neo4j_uri=uri, **common).neo4j_uri == uri  # type: ignore[arg-type]
    amqps = "amqps://u:p@mq.example.com:5671/vhost"
    assert GraphinatorSettings(amqp_url=amqps, **common).amqp_urls() == [amqps]  # type: ignore[arg-type]
    for mode in ("require", "verify-ca", "verify-full"):
        info = TableinatorSettings(postgres_sslmode=mode, **common).conninfo()  # type: ignore[arg-type]
        assert f"sslmode={mode}" in info
    dsn = "postgresql://u:p@db.example.com:5432/discogs?sslmode=verify-full&sslrootcert=/ca.pem"
    assert TableinatorSettings(postgres_dsn=dsn, **common).conninfo() == dsn  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"sslmode|pattern"):
        TableinatorSettings(postgres_sslmode="sometimes", **common)  # type: ignore[arg-type]


# ------------------------------------------------------------------ credentials end to end


def _secret(kind: str) -> str:
    return f"Sekr3t-{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def credentials(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A PostgreSQL role, a RabbitMQ user and a Neo4j user, each with a distinctive password."""
    tag = uuid.uuid4().hex[:8]
    creds = {
        "pg_user": f"faults_{tag}",
        "pg_password": _secret("pg"),
        "mq_user": f"faults_{tag}",
        "mq_password": _secret("mq"),
        "neo_user": f"faults_{tag}",
        "neo_password": _secret("neo"),
    }
    creds["pg_db"] = creds["pg_user"]
    role = sql.Identifier(creds["pg_user"]).as_string()
    password = sql.Literal(creds["pg_password"]).as_string()
    _as_postgres(f"CREATE ROLE {role} LOGIN PASSWORD {password}")
    _as_postgres(f"CREATE DATABASE {role} OWNER {role}")
    harness.mgmt("PUT", f"users/{creds['mq_user']}", {"password": creds["mq_password"], "tags": ""})
    harness.mgmt(
        "PUT",
        f"permissions/%2F/{creds['mq_user']}",
        {"configure": ".*", "write": ".*", "read": ".*"},
    )
    with harness.neo4j_driver() as driver:
        driver.execute_query(
            f"CREATE USER {creds['neo_user']} SET PLAINTEXT PASSWORD $p CHANGE NOT REQUIRED",
            p=creds["neo_password"],
            database_="system",
        )
    try:
        yield creds
    finally:
        with harness.neo4j_driver() as driver:
            driver.execute_query(f"DROP USER {creds['neo_user']} IF EXISTS", database_="system")
        harness.mgmt("DELETE", f"users/{creds['mq_user']}")
        _as_postgres(f"DROP DATABASE IF EXISTS {role} WITH (FORCE)")
        _as_postgres(f"DROP ROLE IF EXISTS {role}")


def _as_postgres(statement: str) -> None:
    """Run one statement as the server's superuser (the test role may not create roles)."""
    subprocess.run(
        ["su", "postgres", "-c", "psql -v ON_ERROR_STOP=1 -q"],
        input=statement + ";\n",
        text=True,
        check=True,
        timeout=60,
        capture_output=True,
    )


def _amqp_url(user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(servers.AMQP_URL)
    quoted = urllib.parse.quote(password, safe="")
    return f"amqp://{user}:{quoted}@{parts.hostname}:{parts.port or 5672}/"


@pytest.mark.integration
def test_credentials_never_leak_and_injection_names_are_inert(  # noqa: C901
    case: Case,
    reliability: Reliability,
    graph: None,
    credentials: dict[str, str],
    tmp_path: Path,
) -> None:
    c = credentials
    data = Dataset.sample(per_type=100)
    params = psycopg.conninfo.conninfo_to_dict(servers.POSTGRES_ADMIN_DSN)
    params |= {"user": c["pg_user"], "password": c["pg_password"], "dbname": c["pg_db"]}
    dsn = psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]
    if True:
        harness.declare(case.prefix, harness.SERVICES)
        harness.publish(case.prefix, harness.stream(data) + harness.completions(data))
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir()

        def secret_file(name: str, value: str) -> str:
            path = secrets_dir / name
            path.write_text(value + "\n")
            return str(path)

        amqp = _amqp_url(c["mq_user"], c["mq_password"])
        base = {
            "DISCOGS_EXCHANGE_PREFIX": case.prefix,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "DEBUG",
            "NEO4J_URI": servers.NEO4J_URI,
            "NEO4J_USERNAME": c["neo_user"],
        }
        runs = {
            # Secrets in the environment.
            "env": {
                "graphinator": base | {"AMQP_URL": amqp, "NEO4J_PASSWORD": c["neo_password"]},
                "tableinator": base | {"AMQP_URL": amqp, "POSTGRES_DSN": dsn},
            },
            # Secrets in files (*_FILE), the DSN split into parts.
            "file": {
                "graphinator": base
                | {
                    "AMQP_URL_FILE": secret_file("amqp", amqp),
                    "NEO4J_PASSWORD_FILE": secret_file("neo", c["neo_password"]),
                },
                "tableinator": base
                | {
                    "AMQP_URL_FILE": secret_file("amqp2", amqp),
                    "POSTGRES_USER": c["pg_user"],
                    "POSTGRES_PASSWORD_FILE": secret_file("pg", c["pg_password"]),
                    "POSTGRES_DATABASE": psycopg.conninfo.conninfo_to_dict(dsn)["dbname"],
                },
            },
        }
        outputs: list[str] = []
        for run, envs in runs.items():
            consumers = [case.consumer(s, env, tag=f"-{run}") for s, env in envs.items()]
            for consumer in consumers:
                consumer.start()
            for consumer in consumers:
                consumer.wait_consuming()
                if run == "env":
                    consumer.wait_complete(DataType, within=120)
                for path in ("/health", "/metrics"):
                    got = consumer.get(path)
                    assert got is not None
                    assert got[0] == 200
                    outputs.append(got[1].decode())
            for consumer in consumers:
                assert consumer.stop() == 0
        # Wrong passwords: the error paths (connection refused for authentication) log too.
        wrong = {
            "graphinator": base | {"AMQP_URL": amqp, "NEO4J_PASSWORD": c["neo_password"] + "x"},
            "tableinator": base
            | {
                "AMQP_URL": _amqp_url(c["mq_user"], c["mq_password"] + "x"),
                "POSTGRES_DSN": dsn + "x",
            },
        }
        for service, env in wrong.items():
            consumer = case.consumer(service, env, tag="-wrong")
            consumer.start()
            harness.wait_until(
                lambda cons=consumer: (
                    not cons.running or any(e.get("level") == "warning" for e in cons.logs())
                ),
                within=60,
                what=f"{service} to log its failed connection (or exit)",
            )
            outputs.append(str(consumer.get("/health")))
            consumer.stop()
        reliability.check(
            case,
            data.expected(),
            dsn=dsn,
            graph=True,
            note="consumers ran as dedicated users; secrets via env and *_FILE",
        )
    outputs += [consumer.text() for consumer in case.consumers]
    text = "\n".join(outputs)
    assert len(text) > 10_000
    for key in ("pg_password", "mq_password", "neo_password"):
        for form in {c[key], urllib.parse.quote(c[key], safe=""), c[key] + "x"}:
            assert form not in text, f"{key} appears in logs or health/metrics output"
