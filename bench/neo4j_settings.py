"""Neo4j's server settings for a load, side by side: graphinator drains the bench dump into a
Neo4j started with the project's ``services/neo4j/neo4j.conf`` ("project") and into one
started with a variant of it ("variant"), in alternating order. Neo4j is restarted before
every drain and warmed by an untimed drain of the 0.1 % dump, so that each drain starts
from the same state (still not fully warm: the JIT takes 7-9 of the timed drain's CPU-s,
on both sides).

A variant drops the conf lines that start with each ``--drop`` and appends each ``--add``:

    python -m bench.neo4j_settings --drop server.jvm.additional=-XX:+UseG1GC \\
        --add server.jvm.additional=-XX:+UseParallelGC --pairs 5 --out results/x.json

A variant may also be another Neo4j version: ``--variant-root`` names a checkout whose
``services/neo4j`` (pom and conf) and ``scripts/services.sh`` start it, ``--variant-java`` the
Java home it runs on:

    python -m bench.neo4j_settings --variant-root ../newer \
        --variant-java /usr/lib/jvm/temurin-25-jdk-amd64 --pairs 5 --out results/x.json

Reported per drain as by ``bench.graph_drain``; ratios variant / project.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import dump_bench, graph_drain, harness, stores

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
WARMUP_PERCENT = 0.1


@dataclass(frozen=True)
class Server:
    """How one side starts Neo4j: from which checkout, with which conf, on which Java."""

    root: Path = ROOT
    conf: Path | None = None
    java_home: Path | None = None


def variant_conf(root: Path, drop: list[str], add: list[str]) -> str:
    lines = (root / "services" / "neo4j" / "neo4j.conf").read_text().splitlines()
    kept = [line for line in lines if not line.startswith(tuple(drop))]
    return "\n".join([*kept, *add]) + "\n"


def restart_neo4j(server: Server) -> None:
    env = dict(os.environ)
    if server.conf is not None:
        env["NEO4J_CONF_SOURCE"] = str(server.conf)
    if server.java_home is not None:
        env["PATH"] = f"{server.java_home / 'bin'}:{env['PATH']}"
    quiet = subprocess.DEVNULL
    # Stops whichever server holds the port, this checkout's or another's.
    subprocess.run(["bash", str(SERVICES), "down-neo4j"], check=True, stdout=quiet)
    up = server.root / "scripts" / "services.sh"
    subprocess.run(["bash", str(up), "up-neo4j"], check=True, env=env, stdout=quiet)


def one_run(server: Server, dests: tuple[Path, Path], limit_s: float) -> dict[str, Any]:
    restart_neo4j(server)  # each graph_drain.one_run empties the graph before it starts
    warmup, dest = dests
    graph_drain.one_run("new", warmup, limit_s)  # the JIT compiles the statements' code here
    return graph_drain.one_run("new", dest, limit_s)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drop", action="append", default=[], help="conf line prefix to drop")
    parser.add_argument("--add", action="append", default=[], help="conf line to append")
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--limit", type=float, default=1800, help="seconds a drain may take")
    parser.add_argument("--variant-root", type=Path, default=ROOT, help="checkout to start from")
    parser.add_argument("--variant-java", type=Path, help="Java home of the variant")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dests = (dump_bench.dump_folder(WARMUP_PERCENT), dump_bench.dump_folder(args.percent))
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "neo4j.conf"
        conf.write_text(variant_conf(args.variant_root, args.drop, args.add))
        servers = {
            "project": Server(),
            "variant": Server(args.variant_root.resolve(), conf, args.variant_java),
        }
        try:
            pairs = harness.alternating(
                args.pairs,
                ("project", "variant"),
                lambda which: one_run(servers[which], dests, args.limit),
                "settings",
            )
        finally:
            stores.clear_graph()
            restart_neo4j(Server())
    report = {
        "percent": args.percent,
        "drop": args.drop,
        "add": args.add,
        "variant_root": str(args.variant_root),
        "variant_java": str(args.variant_java or ""),
        "pairs": pairs,
        **harness.paired_ratios(pairs, "variant", "project", graph_drain.KEYS),
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["medians"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
