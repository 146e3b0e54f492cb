"""The pipeline bench's arithmetic: records/s buckets from the log lines, and projections."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import chart, pipeline


def _line(at: str, service: str, data_type: str, size: int) -> bytes:
    event = {
        "event": "Batch processed",
        "timestamp": f"2026-12-04T10:00:{at}Z",
        "service": service,
        "data_type": data_type,
        "batch_size": size,
    }
    return orjson.dumps(event)


def test_series_sums_batches_per_bucket_from_the_first_batch(tmp_path: Path) -> None:
    lines = [
        _line("00.000", "graphinator", "releases", 500),
        _line("01.000", "graphinator", "releases", 500),
        _line("12.000", "graphinator", "releases", 250),  # bucket 2; bucket 1 is empty
        b"not json: a traceback line",
        orjson.dumps({"event": "graph_schema_ready", "timestamp": "2026-12-04T10:00:00Z"}),
    ]
    (tmp_path / "graphinator.log").write_bytes(b"\n".join(lines))
    (tmp_path / "tableinator.log").write_bytes(_line("03.000", "tableinator", "artists", 100))
    got = chart.series(tmp_path)
    step = chart.BUCKET_S
    assert got == {
        "graphinator releases": [(step / 2, 1000 / step), (1.5 * step, 0.0), (2.5 * step, 50.0)],
        "tableinator artists": [(step / 2, 100 / step)],
    }


def test_chart_is_written(tmp_path: Path) -> None:
    (tmp_path / "graphinator.log").write_bytes(_line("00.000", "graphinator", "labels", 10))
    chart.draw(tmp_path, tmp_path / "out.png")
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _stage(wall: float, cpu: dict[str, float], records: int) -> dict[str, object]:
    return {"wall_s": wall, "cpu_s": cpu, "records": records}


def test_projections_by_wall_clock_and_by_cpu() -> None:
    small = pipeline.FULL_RECORDS // 100
    report = {
        "runs": [
            {
                "consumers_drain": _stage(10, {"a": 1.0}, small),
                "whole_pipeline": _stage(100, {"a": 30.0, "b": 10.0}, small),
            },
            {
                "consumers_drain": _stage(10, {"a": 1.0}, 5 * small),
                "whole_pipeline": _stage(400, {"a": 220.0}, 5 * small),
            },
        ]
    }
    done = pipeline.summarise(report)
    one = done["runs"][0]["whole_pipeline"]
    assert one["records_per_s"] == round(small / 100)
    assert one["full_dump_projection_h"] == round(100 * 100 / 3600, 2)
    assert one["cpu_s_total"] == 40.0
    assert one["cpu_bound_projection_h"] == round(40 * 100 / pipeline.CORES / 3600, 2)
    assert done["growth_rate_ratio"] == 1.25  # 5x the records in 4x the time
    # 44 against 40 CPU s per 1 % (from per-record figures rounded to the microsecond)
    assert done["growth_cpu_per_record_ratio"] == pytest.approx(1.1, abs=0.01)
    # Between the sizes: 4 % of the dump in 300 s and 180 CPU s.
    marginal = done["marginal"]
    assert marginal["records_per_s"] == round(4 * small / 300)
    assert marginal["full_dump_projection_h"] == pytest.approx(300 * 25 / 3600, abs=0.01)
    assert marginal["cpu_bound_projection_h"] == pytest.approx(
        180 * 25 / pipeline.CORES / 3600, abs=0.01
    )
