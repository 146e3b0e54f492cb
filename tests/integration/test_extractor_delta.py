"""Delta publishes on the real broker: version A in full with a state folder, then B sends
exactly what changed, the deletions and the counts; a broken run leaves the manifests."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractConnection, AbstractQueue

from bench.dumpdelta import Changes, derive
from common.messages import ExtractionComplete, decode
from common.records import DataType
from extractor.manifest import manifest_path, read_info
from extractor.publish import PublishOptions, collect_dumps, publish_dumps
from extractor.xmlparse import DumpError
from tests import servers
from tests.integration.test_extractor_publish import bind_queues, run_cli

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
A, B = "20200806", "20200906"


@pytest.fixture(scope="module")
def version_b(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[DataType, Changes]]:
    dest = tmp_path_factory.mktemp("b")
    return dest, derive(SAMPLES, dest, B)


async def bodies(queue: AbstractQueue) -> list[dict[str, Any]]:
    out = []
    while (message := await queue.get(no_ack=True, fail=False, timeout=10)) is not None:
        out.append(orjson.loads(message.body))
    return out


async def drain(queues: dict[DataType, AbstractQueue]) -> dict[DataType, list[dict[str, Any]]]:
    return {t: await bodies(q) for t, q in queues.items()}


async def publish(folder: Path, prefix: str, state: Path, **options: Any) -> dict[DataType, int]:
    return await publish_dumps(
        collect_dumps([folder]),
        url=servers.AMQP_URL,
        prefix=prefix,
        options=PublishOptions(batch_size=4, state_dir=state, **options),
    )


def by_kind(received: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds = defaultdict(list)
    for body in received:
        kinds[body["type"]].append(body)
    return kinds


def check_delta(received: list[dict[str, Any]], data_type: DataType, changes: Changes) -> None:
    for body in received:  # the consumers' decoder reads every one as a delta's
        message = decode(data_type, orjson.dumps(body), max_bytes=1 << 24)
        if isinstance(message, ExtractionComplete):
            assert message.delta_base(data_type) == A
        else:
            assert (message.base_version, getattr(message, "rejected", [])) == (A, [])
    kinds = by_kind(received)
    assert set(kinds) == {"batch", "delete", "file_complete", "extraction_complete"}
    for body in kinds["batch"] + kinds["delete"]:
        assert (body["version"], body["base_version"], body["data_type"]) == (B, A, data_type)
    sent = [r["id"] for b in kinds["batch"] for r in b["records"]]
    assert sorted(sent, key=int) == sorted(changes.changed + changes.added, key=int)
    deleted = [i for b in kinds["delete"] for i in b["ids"]]
    assert deleted == changes.removed
    assert all(len(b["ids"]) <= 4 for b in kinds["delete"])
    (complete,) = kinds["file_complete"]
    assert complete["base_version"] == A
    assert complete["total_processed"] == len(sent)
    assert complete["counts"] == {
        "added": len(changes.added),
        "changed": len(changes.changed),
        "unchanged": 1000 - len(changes.changed) - len(changes.removed),
        "deleted": len(changes.removed),
    }
    assert [b["type"] for b in received[-2:]] == ["file_complete", "extraction_complete"]
    done = received[-1]
    assert done["base_versions"] == dict.fromkeys((t.value for t in DataType), A)
    assert done["record_counts"][data_type] == len(sent)


def manifest_versions(state: Path) -> dict[DataType, str | None]:
    infos = {t: read_info(manifest_path(state, t)) for t in DataType}
    return {t: None if i is None else i.version for t, i in infos.items()}


async def test_a_delta_sends_the_changed_added_and_deleted_only(
    amqp_connection: AbstractConnection,
    exchange_prefix: str,
    tmp_path: Path,
    version_b: tuple[Path, dict[DataType, Changes]],
) -> None:
    folder, changes = version_b
    queues = await bind_queues(amqp_connection, exchange_prefix)
    assert await publish(SAMPLES, exchange_prefix, tmp_path) == dict.fromkeys(DataType, 1000)
    full = await drain(queues)
    for t in DataType:  # the first publish is a full one, as without a state folder
        assert all("base_version" not in b for b in full[t])
        assert "base_versions" not in full[t][-1]
    assert manifest_versions(tmp_path) == dict.fromkeys(DataType, A)

    await publish(folder, exchange_prefix, tmp_path)

    received = await drain(queues)
    for t in DataType:
        check_delta(received[t], t, changes[t])
    assert manifest_versions(tmp_path) == dict.fromkeys(DataType, B)


async def test_a_broken_delta_leaves_every_manifest_and_a_rerun_sends_the_same(
    amqp_connection: AbstractConnection,
    exchange_prefix: str,
    tmp_path: Path,
    version_b: tuple[Path, dict[DataType, Changes]],
) -> None:
    folder, changes = version_b
    state, broken = tmp_path / "state", tmp_path / "broken"
    shutil.copytree(folder, broken)
    releases = broken / f"discogs_{B}_releases.xml.gz"
    releases.write_bytes(releases.read_bytes()[: releases.stat().st_size // 2])
    queues = await bind_queues(amqp_connection, exchange_prefix)
    await publish(SAMPLES, exchange_prefix, state)
    await drain(queues)

    with pytest.raises(DumpError, match="truncated or corrupt gzip"):
        await publish(broken, exchange_prefix, state, workers=2)

    assert manifest_versions(state) == dict.fromkeys(DataType, A)
    assert [p.name for p in state.iterdir() if p.name.startswith(".")] == []
    await drain(queues)
    await publish(folder, exchange_prefix, state)
    received = await drain(queues)
    for t in DataType:
        check_delta(received[t], t, changes[t])


async def test_the_command_with_a_state_folder_and_full(
    amqp_connection: AbstractConnection,
    exchange_prefix: str,
    tmp_path: Path,
    version_b: tuple[Path, dict[DataType, Changes]],
) -> None:
    folder, changes = version_b
    queues = await bind_queues(amqp_connection, exchange_prefix)
    state = str(tmp_path)
    for path in (SAMPLES, folder):
        code, err = await run_cli(exchange_prefix, "publish", str(path), "--state-dir", state)
        assert code == 0, err
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    published = {e["file"]: e for e in lines if e.get("event") == "file published"}
    releases = published[f"discogs_{B}_releases.xml.gz"]
    assert releases["delta_from"] == A
    assert releases["counts"]["deleted"] == len(changes[DataType.RELEASES].removed)
    await drain(queues)
    code, err = await run_cli(
        exchange_prefix, "publish", str(folder), "--state-dir", state, "--full"
    )
    assert code == 0, err
    received = await drain(queues)
    for t in DataType:
        assert sum(len(b.get("records", [])) for b in received[t]) == 1000
        assert all("base_version" not in b for b in received[t])
    assert manifest_versions(tmp_path) == dict.fromkeys(DataType, B)
