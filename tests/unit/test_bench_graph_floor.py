"""The graph floor bench: the importer's CSV files it writes from a graph's records, and the
counts it reads from the importer's report."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import graph_floor


def test_a_csv_file_has_a_typed_header_and_quotes_every_string(tmp_path: Path) -> None:
    path = tmp_path / "nodes.csv"
    rows: list[tuple[list[object], dict[str, object]]] = [
        ([1], {"id": 1, "name": 'Say "Hi", all', "formats": ["CD", "LP"], "placeholder": False}),
        ([2], {"id": 2, "name": "", "year": 1999}),
    ]
    assert graph_floor.write_csv(path, [":ID(Release)"], rows) == 2
    header, first, second = path.read_text(encoding="utf-8").splitlines()
    assert (
        header == ":ID(Release),formats:string[],id:long,name:string,placeholder:boolean,year:long"
    )
    assert first == '"1","CD\x1fLP",1,"Say ""Hi"", all",false,'
    # An empty string stays a value (quoted); an absent property is an empty field.
    assert second == '"2",,2,"",,1999'


def test_a_property_of_two_types_is_refused(tmp_path: Path) -> None:
    rows: list[tuple[list[object], dict[str, object]]] = [([1], {"x": 1}), ([2], {"x": "a"})]
    with pytest.raises(ValueError, match="several types"):
        graph_floor.write_csv(tmp_path / "n.csv", [":ID(A)"], rows)


def test_the_counts_are_read_from_the_report_s_last_lines() -> None:
    report = "Imported:\n  5 nodes\n  7 relationships\n  30 properties\nPeak memory usage: 1.0GiB\n"
    assert dict(graph_floor.import_counts("(20 nodes earlier)\n" + report)) == {
        "nodes": 5,
        "relationships": 7,
        "properties": 30,
    }
