"""The graph's floor: Neo4j's offline importer building the graph graphinator made, against
graphinator making it online (docs/performance.md, "Graph write cost").

One drain of the bench dump by each writer (the reference's statements and today's, after
an untimed drain of each, as in :mod:`bench.graph_drain`) gives the online cost. The graph
today's writer left is then exported as the importer's CSV files (a node file per label, a
relationship file per type, typed headers) and built again by
``neo4j-admin database import full`` into a scratch home beside the running server,
``--repeat`` times, each beside an import of the files' headers alone (a JVM starting and
the importer's stages set up, whatever the graph); its CPU (the launcher and the JVM it
starts) and wall time are metered, and its report's counts must equal the exported
graph's. The difference of the medians is what building the graph's store costs, with no
transaction, lock, Cypher or Bolt; the record format's importer builds no index, so the
uniqueness constraints' indexes, which the online load keeps, are not in it.

    python -m bench.graph_floor [--percent 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from neo4j import GraphDatabase

from bench import dump_bench, graph_drain, stores

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
# The server's jars, where scripts/services.sh puts them.
SERVICES = Path(os.environ.get("SERVICES_DIR", ROOT / ".services"))
LIB = Path(os.environ.get("NEO4J_HOME", SERVICES / "neo4j")) / "lib"
# Between the elements of a list property: a character no Discogs text carries.
ARRAY_DELIMITER = "\x1f"
TYPES = {str: "string", bool: "boolean", int: "long", float: "double"}
# A node or relationship: the importer's ids (its own; start and end), its properties.
Row = tuple[list[object], dict[str, Any]]


def _field(value: object) -> str:
    """One CSV field: strings always quoted (so "" stays an empty string), absent empty."""
    if value is None:
        return ""
    if isinstance(value, list):
        return _quoted(ARRAY_DELIMITER.join(str(v) for v in value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quoted(value)
    return str(value)


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _header_type(values: Sequence[object]) -> str:
    """The importer's type for a property, from the values the graph holds."""
    kinds = {type(v) for v in values if v is not None}
    if kinds == {list}:
        inner = {type(e) for v in values if isinstance(v, list) for e in v} or {str}
        return TYPES[inner.pop()] + "[]"
    if len(kinds) != 1:
        raise ValueError(f"a property holds values of several types: {kinds}")
    return TYPES[kinds.pop()]


def write_csv(path: Path, key_columns: list[str], rows: list[Row]) -> int:
    """A CSV file of ``rows`` (the importer's ids, properties) under a typed header."""
    names = sorted({k for _, props in rows for k in props})
    types = [_header_type([props.get(n) for _, props in rows]) for n in names]
    with path.open("w", encoding="utf-8") as f:
        f.write(
            ",".join([*key_columns, *(f"{n}:{t}" for n, t in zip(names, types, strict=True))])
            + "\n"
        )
        for keys, props in rows:
            fields = [_quoted(str(k)) for k in keys] + [_field(props.get(n)) for n in names]
            f.write(",".join(fields) + "\n")
    return len(rows)


def export(folder: Path) -> tuple[list[str], dict[str, int]]:
    """The graph as the importer's files in ``folder``: their arguments, and the counts."""
    with (
        GraphDatabase.driver(stores.NEO4J_URI, auth=stores.NEO4J_AUTH) as driver,
        driver.session() as s,
    ):
        # The importer's ids are the element ids (one id space); no label or type is named.
        nodes = _grouped(
            (r["k"], [r["i"]], r["p"])
            for r in s.run("MATCH (n) RETURN labels(n) AS k, elementId(n) AS i, properties(n) AS p")
        )
        relationships = _grouped(
            ([r["k"]], [r["x"], r["y"]], r["p"])
            for r in s.run(
                "MATCH (x)-[r]->(y) RETURN type(r) AS k, elementId(x) AS x, elementId(y) AS y, "
                "properties(r) AS p"
            )
        )
    args: list[str] = []
    counts = {"nodes": 0, "relationships": 0}
    for flag, groups, columns in (
        ("nodes", nodes, [":ID"]),
        ("relationships", relationships, [":START_ID", ":END_ID"]),
    ):
        for name, rows in groups.items():
            path = folder / f"{flag}_{len(args)}.csv"
            counts[flag] += write_csv(path, columns, rows)
            args.append(f"--{flag}={name}={path}")
    return args, counts


def _grouped(
    records: Iterable[tuple[list[str], list[object], dict[str, Any]]],
) -> dict[str, list[Row]]:
    """Rows by their one label or type."""
    groups: dict[str, list[Row]] = {}
    for names, ids, props in records:
        if len(names) != 1:
            raise ValueError(f"a node with other than one label: {names}")
        groups.setdefault(names[0], []).append((ids, props))
    return groups


def _scratch_home(folder: Path) -> dict[str, str]:
    """The environment of an admin command whose data directory is ``folder``'s own."""
    (folder / "conf").mkdir(parents=True, exist_ok=True)
    (folder / "lib").symlink_to(LIB)
    (folder / "conf" / "neo4j.conf").write_text(
        f"server.directories.data={folder / 'data'}\nserver.directories.logs={folder / 'logs'}\n"
    )
    return {**os.environ, "NEO4J_HOME": str(folder), "NEO4J_CONF": str(folder / "conf")}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def import_once(env: dict[str, str], args: list[str], memory: str) -> dict[str, Any]:
    """``neo4j-admin database import full`` of the exported files: seconds, CPU, counts."""
    command = [
        "java", "-cp", f"{LIB}/*", "org.neo4j.server.startup.Neo4jAdminCommand",
        "database", "import", "full", "neo4j", "--overwrite-destination",
        f"--max-off-heap-memory={memory}", f"--array-delimiter=U+{ord(ARRAY_DELIMITER):04X}",
        f"--report-file={Path(env['NEO4J_HOME']) / 'import.report'}", *args,
    ]  # fmt: skip
    cpu0, wall0 = _children_cpu(), time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds, cpu = time.monotonic() - wall0, _children_cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"import failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    imported = dict(import_counts(done.stdout))
    return {"seconds": round(seconds, 1), "cpu_s": round(cpu, 1), "imported": imported}


def import_counts(report: str) -> Iterator[tuple[str, int]]:
    """The counts of the importer's closing lines ("Imported: 1 nodes 2 relationships ...")."""
    tail = report[report.rfind("Imported:") :]
    for number, what in re.findall(r"(\d+)\s+(nodes|relationships|properties)", tail):
        yield what, int(number)


def headers_only(args: list[str], folder: Path) -> list[str]:
    """The same arguments over copies of the files that keep only their header: what the
    importer costs whatever the graph (a JVM starting, its stages set up)."""
    out = []
    for arg in args:
        flag, name, path = arg.split("=", 2)
        with open(path, encoding="utf-8") as f:
            header = f.readline()
        copy = folder / Path(path).name
        copy.write_text(header, encoding="utf-8")
        out.append(f"{flag}={name}={copy}")
    return out


# The imports compared: the graph with the importer's threads (one a core) and with one
# (on two cores, threads that wait for each other may spend CPU), and the headers alone.
KINDS: dict[str, list[str]] = {"graph": [], "graph_1_thread": ["--threads=1"], "headers_only": []}


def measure_imports(repeat: int, memory: str) -> dict[str, Any]:
    """The graph in Neo4j now, exported and imported ``repeat`` times for each of
    :data:`KINDS`, in turn; the medians, and what the graph itself costs: the cheaper
    graph import's median less the headers'."""
    with tempfile.TemporaryDirectory(prefix="graph-floor-") as tmp:
        folder = Path(tmp)
        (folder / "csv").mkdir()
        (folder / "empty").mkdir()
        files, exported = export(folder / "csv")
        empty = headers_only(files, folder / "empty")
        env = _scratch_home(folder / "home")
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for _ in range(repeat):
            for kind, extra in KINDS.items():
                chosen = empty if kind == "headers_only" else files
                runs[kind].append(import_once(env, [*extra, *chosen], memory))
    for one in runs["graph"] + runs["graph_1_thread"]:
        if any(one["imported"].get(what) != count for what, count in exported.items()):
            raise RuntimeError(f"imported {one['imported']} of {exported}")
    medians = {
        kind: {key: statistics.median(r[key] for r in rows) for key in ("seconds", "cpu_s")}
        for kind, rows in runs.items()
    }
    cheaper = min(medians["graph"]["cpu_s"], medians["graph_1_thread"]["cpu_s"])
    graph_cpu = round(cheaper - medians["headers_only"]["cpu_s"], 1)
    return {"exported": exported, "runs": runs, "medians": medians, "graph_cpu_s": graph_cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3, help="imports of the exported graph")
    parser.add_argument("--memory", default="1G", help="the importer's off-heap memory")
    parser.add_argument("--limit", type=float, default=1800, help="seconds a drain may take")
    parser.add_argument("--out", type=Path, help="results file (default: by percent)")
    args = parser.parse_args()
    dest = dump_bench.dump_folder(args.percent)
    graph_drain.warm_up(dest, args.limit)
    online = {which: graph_drain.one_run(which, dest, args.limit) for which in ("reference", "new")}
    offline = measure_imports(args.repeat, args.memory)  # the graph today's writer left
    stores.clear_graph()
    report = {
        "percent": args.percent,
        "online": online,
        "offline": offline,
        "graph_cpu_over_neo4j_cpu": {
            which: round(offline["graph_cpu_s"] / run["neo4j_cpu_s"], 3)
            for which, run in online.items()
        },
    }
    out = args.out or RESULTS / f"graph_floor_{args.percent:g}pct.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"medians": offline["medians"], **report["graph_cpu_over_neo4j_cpu"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
