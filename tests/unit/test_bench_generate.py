"""Unit tests of bench.generate: deterministic, realistic records for every data type.

Pure: no servers. The generator is what every figure in docs/performance.md is measured
on, so its records must be valid input for the consumers, repeatable from the seed, and
shaped like the samples they are drawn from.
"""

from __future__ import annotations

import hashlib

import pytest

from bench.generate import calibration, generate, templates
from common.normalise import normalise
from common.records import DataType, canonical_json

N = 400


@pytest.mark.parametrize("data_type", list(DataType))
def test_same_seed_same_records(data_type: DataType) -> None:
    first = list(generate(data_type, 50, seed=7))
    again = list(generate(data_type, 50, seed=7))
    other = list(generate(data_type, 50, seed=8))
    assert first == again
    assert [r.sha256 for r in first] != [r.sha256 for r in other]


@pytest.mark.parametrize("data_type", list(DataType))
def test_ids_are_the_requested_span(data_type: DataType) -> None:
    records = list(generate(data_type, 30, first_id=1001))
    assert [r.id for r in records] == [str(i) for i in range(1001, 1031)]
    assert all(r.data["id"] == r.id for r in records)


@pytest.mark.parametrize("data_type", list(DataType))
def test_records_are_normalised_and_hashed_as_consumers_do(data_type: DataType) -> None:
    for record in generate(data_type, N):
        assert record.sha256 == hashlib.sha256(canonical_json(record.data)).hexdigest()
        # The normaliser is idempotent on its own output: the generated shape is the
        # normalised wire shape, so consumers store exactly what was generated.
        assert normalise(data_type, record.data).data == record.data


@pytest.mark.parametrize("data_type", list(DataType))
def test_references_stay_inside_the_id_space(data_type: DataType) -> None:
    space = 100
    for record in generate(data_type, N, id_space=space):
        data = record.data
        refs = [data[k] for k in ("main_release", "master_id") if k in data]
        if isinstance(data.get("parentLabel"), dict) and "id" in data["parentLabel"]:
            refs.append(data["parentLabel"]["id"])
        for key in ("artists", "extraartists", "labels", "aliases", "members", "sublabels"):
            refs += [i["id"] for i in data.get(key) or [] if isinstance(i, dict) and "id" in i]
        assert all(1 <= int(ref) <= space for ref in refs), record.id


@pytest.mark.parametrize("data_type", list(DataType))
def test_shape_follows_the_samples(data_type: DataType) -> None:
    """Sizes, tracks, credits, artists and genres within 25% of the sample's own means."""
    sample = calibration(templates(data_type))
    made = calibration(list(generate(data_type, 4 * len(templates(data_type)))))
    for key in ("mean_bytes", "mean_tracks", "mean_credits", "mean_artists", "mean_genres"):
        if sample[key] == 0:
            assert made[key] == 0, key
        else:
            assert made[key] == pytest.approx(sample[key], rel=0.25), key
