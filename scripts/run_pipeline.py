"""`make run`: the whole pipeline on this machine, no Docker.

Starts graphinator and tableinator (servers come from `make services`), publishes the
bundled samples (or the dumps in DUMP_DIR) with the extractor, waits until both
consumers have handled the extractor's closing message on every type, prints what each
store holds, and stops the consumers with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
from neo4j import GraphDatabase

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TYPES = ("artists", "labels", "masters", "releases")
LABELS = {"artists": "Artist", "labels": "Label", "masters": "Master", "releases": "Release"}
PORTS = {"graphinator": 18001, "tableinator": 18002}


def health(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def wait_for(what: str, check: object, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"run: {what} did not happen within {limit:.0f}s")
        time.sleep(0.5)


def all_complete(port: int, version_seen: set[str]) -> bool:
    h = health(port)
    if not h:
        return False
    types = h["types"]
    assert isinstance(types, dict)
    done = [types[t]["extraction_complete"] for t in TYPES]
    version_seen.update(v for v in done if v)
    return all(done)


def start(name: str, logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEALTH_PORT": str(PORTS[name]), "LOG_FORMAT": "json"}
    out = (logs / f"{name}.log").open("ab")
    return subprocess.Popen([str(BIN / name)], env=env, stdout=out, stderr=subprocess.STDOUT)


def summary() -> dict[str, dict[str, int]]:
    dsn = os.environ.get("POSTGRES_DSN", "postgresql://discogs:discogs@127.0.0.1:5432/discogs")
    with psycopg.connect(dsn) as conn:
        pg = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TYPES}
    auth = (
        os.environ.get("NEO4J_USERNAME", "neo4j"),
        os.environ.get("NEO4J_PASSWORD", "discogs-pass"),
    )
    uri = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
    with GraphDatabase.driver(uri, auth=auth) as driver:
        neo = {}
        for t in TYPES:
            records, _, _ = driver.execute_query(
                f"MATCH (n:{LABELS[t]}) WHERE n.placeholder = false RETURN count(n) AS c"
            )
            neo[t] = records[0]["c"]
    return {"postgresql": pg, "neo4j": neo}


def main() -> int:
    dump_dir = Path(os.environ.get("DUMP_DIR", ROOT / "data" / "samples"))
    logs = ROOT / ".services" / "run"
    logs.mkdir(parents=True, exist_ok=True)
    procs = {name: start(name, logs) for name in PORTS}
    try:
        for name, port in PORTS.items():
            wait_for(
                f"{name} consuming", lambda p=port: (health(p) or {}).get("status") == "ok", 120
            )
        print(f"consumers up; publishing {dump_dir}", flush=True)
        started = time.monotonic()
        subprocess.run([str(BIN / "extractor"), "publish", str(dump_dir)], check=True)
        published = time.monotonic() - started
        seen: set[str] = set()
        for name, port in PORTS.items():
            wait_for(f"{name} drained", lambda p=port: all_complete(p, seen), 24 * 3600)
        elapsed = time.monotonic() - started
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(timeout=60)
    counts = summary()
    total = sum(counts["postgresql"].values())
    print(f"\n{'type':<10}{'postgresql':>12}{'neo4j':>10}")
    for t in TYPES:
        print(f"{t:<10}{counts['postgresql'][t]:>12}{counts['neo4j'][t]:>10}")
    print(
        f"\nversion {', '.join(sorted(seen))}: published in {published:.1f}s, "
        f"both stores complete in {elapsed:.1f}s ({total / elapsed:.0f} records/s per store)"
        f"\nlogs: {logs}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
