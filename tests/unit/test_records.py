"""Unit tests of common.records: normalisation of both wire shapes into one record.

Pure: no servers. The only files read are the four sample dumps in data/samples/.
"""

from __future__ import annotations

import copy
import hashlib
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from common.normalise import normalise
from common.records import DataType, InvalidRecord, Record, canonical_json, release_year
from extractor.xmlparse import DumpFile, iter_raw

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"

A = DataType.ARTISTS
L = DataType.LABELS
M = DataType.MASTERS
R = DataType.RELEASES

# --------------------------------------------------------------------------------------
# One record of each type in both shapes, written by hand after the XML dumps.
# --------------------------------------------------------------------------------------

ARTIST_RAW: dict[str, Any] = {
    "images": {
        "image": {"@type": "primary", "@uri": "", "@uri150": "", "@width": "600", "@height": "400"}
    },
    "id": "1",
    "name": "The Beatles",
    "realname": None,
    "profile": "Rock band from Liverpool.\r\nFormed 1960.",
    "data_quality": "Correct",
    "urls": {"url": "https://www.thebeatles.com"},
    "namevariations": {"name": ["Beatles", "Beatles, The"]},
    "aliases": {"name": {"@id": "100", "#text": "Beatles, The"}},
    # Older dumps repeat the member ids as <id> children beside the <name id=".."> ones.
    "members": {
        "id": ["10", "11"],
        "name": [
            {"@id": "10", "#text": "John Lennon"},
            {"@id": "11", "#text": "Paul McCartney"},
        ],
    },
    "groups": {"name": {"@id": "200", "#text": "Plastic Ono Band"}},
}
ARTIST_NORM: dict[str, Any] = {
    "id": "1",
    "name": "The Beatles",
    "profile": "Rock band from Liverpool.\r\nFormed 1960.",
    "data_quality": "Correct",
    "images": [{"type": "primary", "width": "600", "height": "400"}],
    "urls": ["https://www.thebeatles.com"],
    "namevariations": ["Beatles", "Beatles, The"],
    "aliases": [{"id": "100", "name": "Beatles, The"}],
    "members": [{"id": "10", "name": "John Lennon"}, {"id": "11", "name": "Paul McCartney"}],
    "groups": [{"id": "200", "name": "Plastic Ono Band"}],
}

LABEL_RAW: dict[str, Any] = {
    "id": "1",
    "name": "EMI",
    "contactinfo": "EMI House\r\nLondon",
    "profile": "",
    "data_quality": "Needs Vote",
    "urls": {"url": ["http://www.emi.com", "http://twitter.com/emi"]},
    "parentLabel": {"@id": "500", "#text": "EMI Group"},
    "sublabels": {
        "label": [{"@id": "10", "#text": "Parlophone"}, {"@id": "11", "#text": "Columbia"}]
    },
    "images": None,
}
LABEL_NORM: dict[str, Any] = {
    "id": "1",
    "name": "EMI",
    "contactinfo": "EMI House\r\nLondon",
    "data_quality": "Needs Vote",
    "urls": ["http://www.emi.com", "http://twitter.com/emi"],
    "parentLabel": {"id": "500", "name": "EMI Group"},
    "sublabels": [{"id": "10", "name": "Parlophone"}, {"id": "11", "name": "Columbia"}],
}

MASTER_RAW: dict[str, Any] = {
    "@id": "1000",
    "main_release": "123",
    "images": {"image": []},
    "artists": {
        "artist": {
            "id": "456",
            "name": "The Beatles",
            "anv": None,
            "join": None,
            "role": None,
            "tracks": None,
        }
    },
    "genres": {"genre": ["Rock", "Pop"]},
    "styles": {"style": "Pop Rock"},
    "year": "1969",
    "title": "Abbey Road",
    "notes": None,
    "data_quality": "Correct",
    "videos": {
        "video": {
            "@src": "https://www.youtube.com/watch?v=abc",
            "@duration": "259",
            "@embed": "true",
            "title": "Come Together",
            "description": "Remastered",
        }
    },
}
MASTER_NORM: dict[str, Any] = {
    "id": "1000",
    "main_release": "123",
    "artists": [{"id": "456", "name": "The Beatles"}],
    "genres": ["Rock", "Pop"],
    "styles": ["Pop Rock"],
    "year": 1969,
    "title": "Abbey Road",
    "data_quality": "Correct",
    "videos": [
        {
            "src": "https://www.youtube.com/watch?v=abc",
            "duration": "259",
            "embed": "true",
            "title": "Come Together",
            "description": "Remastered",
        }
    ],
}

RELEASE_RAW: dict[str, Any] = {
    "@id": "123",
    "@status": "Accepted",
    "images": {
        "image": [
            {"@type": "primary", "@uri": "", "@uri150": "", "@width": "600", "@height": "600"},
            {"@type": "secondary", "@uri": "", "@uri150": "", "@width": "500", "@height": "500"},
        ]
    },
    "artists": {
        "artist": {"id": "456", "name": "The Beatles", "anv": None, "join": None, "role": None}
    },
    "title": "Abbey Road",
    "labels": {"label": {"@id": "100", "@name": "Apple Records", "@catno": "PCS 7088"}},
    "extraartists": {
        "artist": [
            {"id": "789", "name": "George Martin", "anv": None, "role": "Producer", "tracks": None},
            {"id": "790", "name": "Geoff Emerick", "anv": "G. Emerick", "role": "Engineer"},
        ]
    },
    "formats": {
        "format": {
            "@name": "Vinyl",
            "@qty": "1",
            "@text": "",
            "descriptions": {"description": ["LP", "Album"]},
        }
    },
    "genres": {"genre": "Rock"},
    "styles": {"style": ["Pop Rock", "Psychedelic Rock"]},
    "country": "UK",
    "released": "1969-09-26",
    "notes": None,
    "data_quality": "Correct",
    "master_id": {"#text": "1000", "@is_main_release": "true"},
    "tracklist": {
        "track": [
            {"position": "A1", "title": "Come Together", "duration": "4:20"},
            {
                "position": "B7",
                "title": "Medley",
                "duration": None,
                "sub_tracks": {
                    "track": [
                        {"position": "B7a", "title": "Golden Slumbers", "duration": "1:31"},
                        {"position": "B7b", "title": "Carry That Weight", "duration": "1:36"},
                    ]
                },
            },
            {
                "position": "B8",
                "title": "The End",
                "duration": "2:05",
                "sub_tracks": {"track": {"position": "B8a", "title": "Coda", "duration": ""}},
                "extraartists": {"artist": {"id": "10", "name": "John Lennon", "role": "Vocals"}},
            },
        ]
    },
    "identifiers": {
        "identifier": {"@type": "Barcode", "@description": None, "@value": "5 099 7 46446 1 7"}
    },
    "videos": None,
    "companies": {
        "company": {
            "id": "266",
            "name": "EMI Records Ltd.",
            "catno": None,
            "entity_type": "13",
            "entity_type_name": "Phonographic Copyright (p)",
            "resource_url": "https://api.discogs.com/labels/266",
        }
    },
}
RELEASE_NORM: dict[str, Any] = {
    "id": "123",
    "status": "Accepted",
    "images": [
        {"type": "primary", "width": "600", "height": "600"},
        {"type": "secondary", "width": "500", "height": "500"},
    ],
    "artists": [{"id": "456", "name": "The Beatles"}],
    "title": "Abbey Road",
    "labels": [{"id": "100", "name": "Apple Records", "catno": "PCS 7088"}],
    "extraartists": [
        {"id": "789", "name": "George Martin", "role": "Producer"},
        {"id": "790", "name": "Geoff Emerick", "anv": "G. Emerick", "role": "Engineer"},
    ],
    "formats": [{"name": "Vinyl", "qty": "1", "descriptions": ["LP", "Album"]}],
    "genres": ["Rock"],
    "styles": ["Pop Rock", "Psychedelic Rock"],
    "country": "UK",
    "released": "1969-09-26",
    "data_quality": "Correct",
    "master_id": "1000",
    "is_main_release": True,
    "tracklist": [
        {"position": "A1", "title": "Come Together", "duration": "4:20"},
        {
            "position": "B7",
            "title": "Medley",
            "sub_tracks": [
                {"position": "B7a", "title": "Golden Slumbers", "duration": "1:31"},
                {"position": "B7b", "title": "Carry That Weight", "duration": "1:36"},
            ],
        },
        {
            "position": "B8",
            "title": "The End",
            "duration": "2:05",
            "sub_tracks": [{"position": "B8a", "title": "Coda"}],
            "extraartists": [{"id": "10", "name": "John Lennon", "role": "Vocals"}],
        },
    ],
    "identifiers": [{"type": "Barcode", "value": "5 099 7 46446 1 7"}],
    "companies": [
        {
            "id": "266",
            "name": "EMI Records Ltd.",
            "entity_type": "13",
            "entity_type_name": "Phonographic Copyright (p)",
            "resource_url": "https://api.discogs.com/labels/266",
        }
    ],
}

PAIRS: list[tuple[DataType, dict[str, Any], dict[str, Any]]] = [
    (A, ARTIST_RAW, ARTIST_NORM),
    (L, LABEL_RAW, LABEL_NORM),
    (M, MASTER_RAW, MASTER_NORM),
    (R, RELEASE_RAW, RELEASE_NORM),
]
PAIR_IDS = [dt.value for dt, _, _ in PAIRS]
BASE = {dt: norm for dt, _, norm in PAIRS}


def norm(data_type: DataType, obj: object) -> dict[str, Any]:
    return normalise(data_type, obj).data


def wire(obj: object) -> Any:
    """``obj`` as a consumer receives it: through JSON."""
    return orjson.loads(orjson.dumps(obj))


def with_field(base: dict[str, Any], key: str, value: object) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out[key] = value
    return out


def without(base: dict[str, Any], key: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    out.pop(key, None)
    return out


def invalid(data_type: DataType, obj: object) -> str:
    with pytest.raises(InvalidRecord) as e:
        normalise(data_type, obj)
    return str(e.value)


# --------------------------------------------------------------------------------------
# Both shapes give one record
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data_type", "raw", "expected"), PAIRS, ids=PAIR_IDS)
def test_raw_shape_normalises_to_expected(
    data_type: DataType, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert norm(data_type, wire(raw)) == expected


@pytest.mark.parametrize(("data_type", "raw", "expected"), PAIRS, ids=PAIR_IDS)
def test_normalised_shape_passes_through_unchanged(
    data_type: DataType, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert norm(data_type, wire(expected)) == expected


@pytest.mark.parametrize(("data_type", "raw", "expected"), PAIRS, ids=PAIR_IDS)
def test_both_shapes_give_the_same_record_and_hash(
    data_type: DataType, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    from_raw = normalise(data_type, wire(raw))
    from_norm = normalise(data_type, wire(expected))
    assert from_raw == from_norm
    assert from_raw.id == from_norm.id == expected["id"]
    assert from_raw.sha256 == from_norm.sha256


@pytest.mark.parametrize(("data_type", "raw", "expected"), PAIRS, ids=PAIR_IDS)
def test_normalise_does_not_mutate_its_input(
    data_type: DataType, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    given = copy.deepcopy(raw)
    normalise(data_type, given)
    assert given == raw


@pytest.mark.parametrize(("data_type", "raw", "expected"), PAIRS, ids=PAIR_IDS)
def test_message_type_key_is_not_part_of_the_record(
    data_type: DataType, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    record = normalise(data_type, {"type": "data", **raw})
    assert "type" not in record.data
    assert record == normalise(data_type, raw)


def test_reference_normalised_release_with_descriptions_wrapper() -> None:
    # The existing extractor's normalised releases keep the descriptions wrapper in formats.
    msg = {
        "id": "123",
        "title": "Abbey Road",
        "formats": [{"name": "Vinyl", "qty": "1", "descriptions": {"description": "LP"}}],
        "master_id": "1000",
    }
    assert norm(R, msg)["formats"] == [{"name": "Vinyl", "qty": "1", "descriptions": ["LP"]}]


@pytest.mark.parametrize(
    ("data_type", "key", "raw", "expected"),
    [
        (
            A,
            "aliases",
            {"name": {"@id": "100", "#text": "Beatles, The"}},
            [{"id": "100", "name": "Beatles, The"}],
        ),
        (
            A,
            "aliases",
            {"name": [{"@id": "1", "#text": "X"}, {"@id": "2", "#text": "Y"}]},
            [{"id": "1", "name": "X"}, {"id": "2", "name": "Y"}],
        ),
        (A, "aliases", {"name": "No Id"}, [{"name": "No Id"}]),
        (A, "aliases", {"name": {"@id": "7"}}, [{"id": "7"}]),
        (
            A,
            "members",
            {"id": "10", "name": {"@id": "10", "#text": "John"}},
            [{"id": "10", "name": "John"}],
        ),
        (A, "members", {"name": ["John", "Paul"]}, [{"name": "John"}, {"name": "Paul"}]),
        (A, "groups", {"name": {"@id": "200", "#text": "Wings"}}, [{"id": "200", "name": "Wings"}]),
        (A, "urls", {"url": "http://a"}, ["http://a"]),
        (A, "urls", {"url": ["http://a", None, "", "http://b"]}, ["http://a", "", "", "http://b"]),
        (A, "namevariations", {"name": "Beatles"}, ["Beatles"]),
        (
            L,
            "sublabels",
            {"label": {"@id": "10", "#text": "Parlophone"}},
            [{"id": "10", "name": "Parlophone"}],
        ),
        (L, "sublabels", {"label": [None, None]}, [{}, {}]),
        (
            L,
            "parentLabel",
            {"@id": "500", "#text": "EMI Group"},
            {"id": "500", "name": "EMI Group"},
        ),
        (L, "parentLabel", "EMI Group", {"name": "EMI Group"}),
        (M, "genres", {"genre": "Rock"}, ["Rock"]),
        (M, "genres", {"genre": ["Rock", "Pop"]}, ["Rock", "Pop"]),
        (M, "genres", {"genre": {"#text": "Rock"}}, ["Rock"]),
        (M, "styles", {"style": "Techno"}, ["Techno"]),
        (M, "main_release", "5415", "5415"),
        (M, "year", "1997", 1997),
        (
            M,
            "artists",
            {"artist": {"id": "1", "name": "A", "anv": None, "join": ","}},
            [{"id": "1", "name": "A", "join": ","}],
        ),
        (R, "master_id", {"#text": "1000", "@is_main_release": "false"}, "1000"),
        (R, "master_id", 1000, "1000"),
        (
            R,
            "labels",
            {"label": {"@id": "100", "@name": "Apple", "@catno": "PCS 7088"}},
            [{"id": "100", "name": "Apple", "catno": "PCS 7088"}],
        ),
        (
            R,
            "labels",
            {
                "label": [
                    {"@id": "1", "@name": "A", "@catno": "none"},
                    {"@id": "2", "@name": "B", "@catno": ""},
                ]
            },
            [{"id": "1", "name": "A", "catno": "none"}, {"id": "2", "name": "B"}],
        ),
        (
            R,
            "formats",
            {
                "format": {
                    "@name": "CD",
                    "@qty": "2",
                    "@text": "",
                    "descriptions": {"description": "Album"},
                }
            },
            [{"name": "CD", "qty": "2", "descriptions": ["Album"]}],
        ),
        (
            R,
            "formats",
            {"format": {"@name": "File", "@qty": "1", "@text": "320 kbps", "descriptions": None}},
            [{"name": "File", "qty": "1", "text": "320 kbps"}],
        ),
        (
            R,
            "tracklist",
            {"track": {"position": "1", "title": "Only", "duration": "3:00"}},
            [{"position": "1", "title": "Only", "duration": "3:00"}],
        ),
        (
            R,
            "tracklist",
            {
                "track": {
                    "position": "1",
                    "title": "T",
                    "sub_tracks": {"track": {"position": "1a", "title": "S"}},
                }
            },
            [{"position": "1", "title": "T", "sub_tracks": [{"position": "1a", "title": "S"}]}],
        ),
        (
            R,
            "tracklist",
            {"track": {"title": "T", "artists": {"artist": {"id": "5", "name": "N"}}}},
            [{"title": "T", "artists": [{"id": "5", "name": "N"}]}],
        ),
        (
            R,
            "identifiers",
            {
                "identifier": [
                    {"@type": "Barcode", "@value": "1"},
                    {"@type": "Matrix / Runout", "@description": "Side A", "@value": "X-1"},
                ]
            },
            [
                {"type": "Barcode", "value": "1"},
                {"type": "Matrix / Runout", "description": "Side A", "value": "X-1"},
            ],
        ),
        (
            R,
            "videos",
            {
                "video": {
                    "@src": "https://y/1",
                    "@duration": "60",
                    "@embed": "true",
                    "title": "T",
                    "description": None,
                }
            },
            [{"src": "https://y/1", "duration": "60", "embed": "true", "title": "T"}],
        ),
        (
            R,
            "companies",
            {"company": [{"id": "1", "name": "C1"}, {"id": "2", "name": "C2", "catno": "X"}]},
            [{"id": "1", "name": "C1"}, {"id": "2", "name": "C2", "catno": "X"}],
        ),
        (
            R,
            "images",
            {
                "image": {
                    "@type": "primary",
                    "@uri": "",
                    "@uri150": "",
                    "@width": "1",
                    "@height": "2",
                }
            },
            [{"type": "primary", "width": "1", "height": "2"}],
        ),
    ],
)
def test_raw_field_shapes(data_type: DataType, key: str, raw: object, expected: object) -> None:
    record = norm(data_type, wire({"id": "1", key: raw}))
    assert record.get(key) == expected
    # and the normalised output is a fixed point
    assert norm(data_type, wire(record)) == record


@pytest.mark.parametrize(
    ("master_id", "flag"),
    [
        ({"#text": "1000", "@is_main_release": "true"}, True),
        ({"#text": "1000", "@is_main_release": "True"}, True),
        ({"#text": "1000", "@is_main_release": "false"}, False),
        ({"#text": "1000", "@is_main_release": "no"}, False),
        ({"#text": "1000", "is_main_release": "true"}, True),
        ({"#text": "1000"}, None),
        ("1000", None),
        (1000, None),
    ],
)
def test_is_main_release_flag(master_id: object, flag: bool | None) -> None:
    data = norm(R, {"@id": "1", "master_id": master_id})
    assert data["master_id"] == "1000"
    assert data.get("is_main_release") is flag
    assert norm(R, wire(data)) == data  # the flag survives a second pass


@pytest.mark.parametrize("flag", [True, False])
def test_is_main_release_in_normalised_shape_is_kept(flag: bool) -> None:
    data = norm(R, {"id": "1", "master_id": "1000", "is_main_release": flag})
    assert data == {"id": "1", "master_id": "1000", "is_main_release": flag}


def test_is_main_release_only_for_releases() -> None:
    data = norm(M, {"@id": "1", "master_id": {"#text": "9", "@is_main_release": "true"}})
    assert "is_main_release" not in data


# --------------------------------------------------------------------------------------
# The sample dumps: every record, both through JSON and twice through normalise
# --------------------------------------------------------------------------------------


def _dump(data_type: DataType) -> DumpFile:
    return DumpFile.from_path(SAMPLES / f"discogs_20200806_{data_type.value}.xml.gz")


@pytest.fixture(scope="module", params=list(DataType), ids=[t.value for t in DataType])
def sample(request: pytest.FixtureRequest) -> tuple[DataType, list[dict[str, Any]]]:
    data_type: DataType = request.param
    return data_type, list(iter_raw(_dump(data_type)))


def test_samples_hold_a_thousand_records(
    sample: tuple[DataType, list[dict[str, Any]]],
) -> None:
    _, raws = sample
    assert len(raws) == 1000


def test_normalise_is_idempotent_on_every_sample_record(
    sample: tuple[DataType, list[dict[str, Any]]],
) -> None:
    data_type, raws = sample
    for raw in raws:
        first = normalise(data_type, raw)
        second = normalise(data_type, first.data)
        assert second.data == first.data, first.id
        assert second.sha256 == first.sha256, first.id
        assert second.id == first.id


def test_sample_records_survive_the_wire(
    sample: tuple[DataType, list[dict[str, Any]]],
) -> None:
    data_type, raws = sample
    for raw in raws:
        direct = normalise(data_type, raw)
        # the raw shape through JSON (older producers) and the normalised one (current)
        assert normalise(data_type, wire(raw)) == direct
        published = {"type": "data", "sha256": direct.sha256, **direct.data}
        assert normalise(data_type, wire(published)) == direct


def test_sample_records_are_clean(sample: tuple[DataType, list[dict[str, Any]]]) -> None:
    data_type, raws = sample
    ids = set()
    for raw in raws:
        record = normalise(data_type, raw)
        assert record.id.isdigit()
        assert record.id == record.data["id"]
        assert len(record.sha256) == 64
        ids.add(record.id)
        _assert_clean(record.data)
    assert len(ids) == len(raws)


def _assert_clean(value: object, *, item: bool = False) -> None:
    """No empty fields, no XML prefixes and no wrapper objects left anywhere (an item of a
    list may be empty: an empty element keeps its place)."""
    if isinstance(value, dict):
        assert value or item
        for k, v in value.items():
            assert not k.startswith(("@", "#")), k
            _assert_clean(v)
    elif isinstance(value, list):
        assert value
        for v in value:
            _assert_clean(v, item=True)
    else:
        assert value is not None
        assert value != "" or item


# --------------------------------------------------------------------------------------
# ids
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("data_type", list(DataType))
@pytest.mark.parametrize("given", [123, "123", " 123", "\t123\n", "0123", {"#text": "123"}])
def test_id_forms_give_one_record(data_type: DataType, given: object) -> None:
    record = normalise(data_type, {"id": given, "name": "x"})
    assert record == normalise(data_type, {"id": "123", "name": "x"})
    assert record.id == "123"


@pytest.mark.parametrize("data_type", [M, R])
def test_attribute_id_equals_child_id(data_type: DataType) -> None:
    assert normalise(data_type, {"@id": "5", "title": "t"}) == normalise(
        data_type, {"id": 5, "title": "t"}
    )


def test_largest_64_bit_id_is_accepted() -> None:
    assert normalise(A, {"id": 2**63 - 1}).id == str(2**63 - 1)


@pytest.mark.parametrize("data_type", list(DataType))
@pytest.mark.parametrize(
    "given",
    [None, "", [], {}, {"@is_main_release": "true"}],
    ids=["null", "empty-string", "empty-list", "empty-object", "attributes-only"],
)
def test_empty_id_is_invalid(data_type: DataType, given: object) -> None:
    assert "no id" in invalid(data_type, {"id": given, "name": "x"})


@pytest.mark.parametrize("data_type", list(DataType))
def test_missing_id_is_invalid(data_type: DataType) -> None:
    assert "no id" in invalid(data_type, {"name": "x", "title": "y"})


@pytest.mark.parametrize(
    "given",
    [
        True,
        False,
        1.5,
        123.0,
        -1,
        "-1",
        "+1",
        "1; DROP TABLE artists",
        "12a",
        "abc",
        " ",
        "1 2",
        "1e3",
        "0x10",
        "١٢٣",  # Arabic-Indic digits: str.isdigit() is true, int() accepts them
        "\uff11\uff12\uff13",  # full-width digits
        str(2**63),
        "9" * 20,
        ["1"],
        {"name": "x"},
        {"id": {"nested": "1"}},
    ],
)
def test_bad_id_is_invalid(given: object) -> None:
    assert "'id'" in invalid(A, {"id": given})


@pytest.mark.parametrize(
    ("data_type", "key", "value"),
    [
        (R, "master_id", "abc"),
        (R, "master_id", {"#text": "1; DROP", "@is_main_release": "true"}),
        (R, "master_id", True),
        (R, "master_id", {"x": "1"}),
        (M, "main_release", "12.5"),
        (M, "main_release", [1]),
    ],
)
def test_bad_reference_id_is_invalid_and_named(
    data_type: DataType, key: str, value: object
) -> None:
    assert repr(key) in invalid(data_type, {"id": "1", key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("artists", [{"id": "x1", "name": "A"}]),
        ("artists", [{"id": {"a": 1}, "name": "A"}]),
        ("extraartists", {"artist": {"id": True, "name": "A"}}),
        ("labels", {"label": {"@id": "-5", "@name": "L"}}),
        ("companies", [{"id": "1.0", "name": "C"}]),
        ("tracklist", [{"title": "t", "artists": [{"id": "?", "name": "A"}]}]),
    ],
)
def test_bad_nested_id_is_invalid(key: str, value: object) -> None:
    assert "'id'" in invalid(R, {"id": "1", key: value})


def test_nested_ids_are_canonical() -> None:
    data = norm(R, {"id": "1", "artists": [{"id": 7, "name": "A"}, {"id": "007", "name": "B"}]})
    assert data["artists"] == [{"id": "7", "name": "A"}, {"id": "7", "name": "B"}]


@pytest.mark.parametrize("given", [None, [], "x", 5, True, ("a",)])
def test_record_must_be_an_object(given: object) -> None:
    assert "JSON object" in invalid(A, given)


# --------------------------------------------------------------------------------------
# Optional fields: absent, "", {}, null, [] all mean absent
# --------------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


OPTIONAL: dict[DataType, list[str]] = {
    A: _words(
        "name realname profile data_quality urls namevariations aliases members groups images"
    ),
    L: _words("name contactinfo profile data_quality urls sublabels parentLabel images"),
    M: _words("main_release artists genres styles year title notes data_quality videos images"),
    R: _words(
        "status title artists extraartists labels formats genres styles country released notes "
        "data_quality master_id tracklist identifiers videos companies images"
    ),
}
OPTIONAL_CASES = [(dt, key) for dt, keys in OPTIONAL.items() for key in keys]
EMPTIES: list[object] = [None, "", {}, []]
EMPTY_IDS = ["null", "empty-string", "empty-object", "empty-list"]


@pytest.mark.parametrize(("data_type", "key"), OPTIONAL_CASES)
@pytest.mark.parametrize("empty", EMPTIES, ids=EMPTY_IDS)
def test_empty_optional_field_is_dropped(data_type: DataType, key: str, empty: object) -> None:
    base = without(BASE[data_type], key)
    if key == "master_id":
        base.pop("is_main_release", None)
    expected = normalise(data_type, base)
    assert normalise(data_type, with_field(base, key, empty)) == expected
    assert key not in expected.data


@pytest.mark.parametrize(
    ("data_type", "key", "wrapper"),
    [
        (A, "urls", "url"),
        (A, "namevariations", "name"),
        (A, "aliases", "name"),
        (A, "members", "name"),
        (A, "groups", "name"),
        (L, "sublabels", "label"),
        (M, "artists", "artist"),
        (M, "genres", "genre"),
        (M, "styles", "style"),
        (M, "videos", "video"),
        (R, "labels", "label"),
        (R, "extraartists", "artist"),
        (R, "formats", "format"),
        (R, "tracklist", "track"),
        (R, "identifiers", "identifier"),
        (R, "companies", "company"),
        (R, "images", "image"),
    ],
)
def test_empty_wrapper_is_dropped(data_type: DataType, key: str, wrapper: str) -> None:
    for empty in (None, "", {}, [], {wrapper: []}):
        assert key not in norm(data_type, {"id": "1", key: empty})


@pytest.mark.parametrize(
    ("data_type", "key", "wrapper"),
    [
        (A, "urls", "url"),
        (A, "aliases", "name"),
        (L, "sublabels", "label"),
        (M, "genres", "genre"),
        (R, "tracklist", "track"),
        (R, "labels", "label"),
    ],
)
@pytest.mark.parametrize(
    ("children", "count"),
    [(None, 1), ("", 1), ({}, 1), ([None], 1), ([None, ""], 2), ([{}, None, {}], 3)],
    ids=["null", "empty-string", "empty-object", "list-of-null", "nulls", "list-of-empty"],
)
def test_empty_children_keep_their_places(
    data_type: DataType, key: str, wrapper: str, children: object, count: int
) -> None:
    """An empty element in a wrapper is an item: ``""`` in a text list, else ``{}``."""
    data = norm(data_type, {"id": "1", key: {wrapper: children}})
    empty = "" if key in ("urls", "genres") else {}
    assert data[key] == [empty] * count
    assert norm(data_type, data) == data


def test_an_empty_item_keeps_its_position_among_others() -> None:
    raw = {"track": [{"title": "One"}, {"position": None, "title": None}, {"title": "Three"}]}
    data = norm(R, {"id": "1", "tracklist": raw})
    assert data["tracklist"] == [{"title": "One"}, {}, {"title": "Three"}]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("artists", [{"id": "1", "name": "A", "anv": "", "join": None, "role": {}, "tracks": []}]),
        ("tracklist", [{"position": "1", "title": "T", "duration": "", "sub_tracks": None}]),
        ("tracklist", [{"position": "1", "title": "T", "sub_tracks": {"track": []}}]),
        (
            "formats",
            [{"name": "CD", "qty": "1", "text": "", "descriptions": {"description": None}}],
        ),
        ("labels", [{"id": "1", "name": "L", "catno": None}]),
    ],
)
def test_empty_nested_fields_are_dropped(key: str, value: list[dict[str, Any]]) -> None:
    (item,) = norm(R, {"id": "1", key: value})[key]
    assert all(v not in (None, "", [], {}) for v in item.values())


def test_fields_that_empty_out_are_dropped_list_items_are_kept() -> None:
    data = norm(
        R, {"id": "1", "artists": [{"anv": None}, {"name": "A"}], "extra": {"a": {"b": None}}}
    )
    assert data == {"id": "1", "artists": [{}, {"name": "A"}]}


def test_nested_empty_lists_are_dropped_idempotently() -> None:
    data = norm(A, {"id": "1", "extra": [[{}], [None, ""], ["x"]]})
    assert data == {"id": "1", "extra": [["x"]]}
    assert norm(A, data) == data


def test_false_and_zero_are_not_empty() -> None:
    data = norm(A, {"id": "1", "flag": False, "count": 0})
    assert data == {"id": "1", "flag": False, "count": 0}


def test_unknown_fields_are_kept() -> None:
    data = norm(A, {"id": "1", "@extra": "attr", "future": {"x": ["1", "2"]}})
    assert data == {"id": "1", "extra": "attr", "future": {"x": ["1", "2"]}}


# --------------------------------------------------------------------------------------
# Wrong field types
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_type", "key", "value"),
    [
        (R, "tracklist", "A1 Come Together"),
        (R, "tracklist", {"track": "A1"}),
        (R, "tracklist", [["A1"]]),
        (R, "labels", "Apple"),
        (R, "formats", [1]),
        (R, "companies", [True]),
        (A, "name", {"first": "John"}),
        (A, "name", {"#text": "John", "@lang": "en"}),
        (A, "name", ["John"]),
        (A, "name", True),
        (A, "realname", {"a": 1}),
        (R, "title", ["Abbey Road"]),
        (R, "country", {"code": "UK"}),
        (R, "released", [1969]),
        (M, "genres", [{"name": "Rock"}]),
        (M, "genres", {"genre": [{"name": "Rock"}]}),
        (M, "genres", {"genre": {"x": "Rock"}}),
        (M, "genres", [["Rock"]]),
        (M, "genres", [True]),
        (M, "styles", [{"a": 1}]),
        (A, "urls", [{"href": "http://x"}]),
        (A, "namevariations", [[]]),
        (A, "aliases", [5]),
        (A, "aliases", {"name": [True]}),
        (A, "members", [["John"]]),
        (L, "parentLabel", ["EMI"]),
        (L, "parentLabel", 5),
        (L, "sublabels", ["x", 3]),
    ],
)
def test_wrong_field_type_is_invalid_and_named(
    data_type: DataType, key: str, value: object
) -> None:
    assert repr(key) in invalid(data_type, {"id": "1", key: value})


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("tracklist", [{"title": "T", "sub_tracks": "x"}], "sub_tracks"),
        ("formats", [{"name": "CD", "descriptions": {"description": {"x": "LP"}}}], "descriptions"),
        ("extraartists", [{"name": "A", "role": ["Producer"]}], "role"),
        ("labels", [{"@id": "1", "@catno": {"x": 1}}], "catno"),
    ],
)
def test_wrong_nested_field_type_names_the_nested_field(
    key: str, value: object, named: str
) -> None:
    assert repr(named) in invalid(R, {"id": "1", key: value})


@pytest.mark.parametrize(("key", "value"), [("title", 1969), ("catno", 7088), ("title", 1.5)])
def test_numbers_are_accepted_as_text(key: str, value: object) -> None:
    assert norm(R, {"id": "1", key: value})[key] == value


def test_numbers_in_text_lists_become_strings() -> None:
    assert norm(M, {"id": "1", "genres": [1, 2.5]})["genres"] == ["1", "2.5"]


# --------------------------------------------------------------------------------------
# NUL and nesting
# --------------------------------------------------------------------------------------

NUL = "\u0000"


@pytest.mark.parametrize(
    ("data_type", "obj"),
    [
        (A, {"id": "1", "name": f"a{NUL}b"}),
        (A, {"id": "1", "name": NUL}),
        (A, {"id": "1", "profile": f"x{NUL}"}),
        (A, {"id": "1", "namevariations": {"name": ["ok", f"{NUL}bad"]}}),
        (A, {"id": "1", "aliases": {"name": {"@id": "5", "#text": f"B{NUL}"}}}),
        (L, {"id": "1", "parentLabel": {"@id": "2", "#text": f"P{NUL}"}}),
        (M, {"@id": "1", "genres": {"genre": f"Ro{NUL}ck"}}),
        (
            R,
            {
                "@id": "1",
                "tracklist": {
                    "track": {"title": "T", "sub_tracks": {"track": {"title": f"S{NUL}"}}}
                },
            },
        ),
        (R, {"@id": "1", "formats": [{"name": "CD", "descriptions": [f"LP{NUL}"]}]}),
        (
            R,
            {"@id": "1", "identifiers": {"identifier": {"@type": "Barcode", "@value": f"1{NUL}2"}}},
        ),
        (R, {"@id": "1", "extra": {f"key{NUL}": "value"}}),
        (R, {"@id": "1", "extra": [[f"{NUL}"]]}),
        (R, {"@id": "1", "title": f"back\\slash{NUL}"}),
    ],
)
def test_nul_anywhere_is_invalid(data_type: DataType, obj: dict[str, Any]) -> None:
    assert "NUL" in invalid(data_type, obj)
    assert "NUL" in invalid(data_type, wire(obj))


@pytest.mark.parametrize("key", ["id", "master_id"])
def test_nul_in_an_id_is_invalid(key: str) -> None:
    assert repr(key) in invalid(
        R, {"id": "1", key: f"5{NUL}"} if key != "id" else {"id": f"5{NUL}"}
    )


@pytest.mark.parametrize("text", ["C:\\u0000", "\\u0000", "a\\\\u0000", "\\x00", "u0000"])
def test_text_that_only_looks_like_an_escaped_nul_is_kept(text: str) -> None:
    assert norm(A, {"id": "1", "name": text})["name"] == text


def test_nul_in_given_sha256_is_invalid() -> None:
    assert "sha256" in invalid(A, {"id": "1", "sha256": f"ab{NUL}"})


def _nested_dicts(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "x"}
    for _ in range(depth):
        value = {"a": value}
    return value


def _nested_lists(depth: int) -> list[Any]:
    value: list[Any] = ["x"]
    for _ in range(depth):
        value = [value]
    return value


def _nested_tracks(depth: int) -> dict[str, Any]:
    track: dict[str, Any] = {"title": "leaf"}
    for _ in range(depth):
        track = {"title": "t", "sub_tracks": {"track": track}}
    return {"track": track}


@pytest.mark.parametrize(
    "obj",
    [
        {"id": "1", "extra": _nested_dicts(40)},
        {"id": "1", "extra": _nested_dicts(5000)},
        {"id": "1", "extra": _nested_lists(40)},
        {"id": "1", "extra": _nested_lists(1000)},
        {"id": "1", "extra": _nested_lists(5000)},
        {"id": "1", "tracklist": _nested_tracks(40)},
        {"id": "1", "tracklist": _nested_tracks(3000)},
        {"id": "1", "extra": [_nested_dicts(40)]},
    ],
    ids=[
        "dicts-40",
        "dicts-5000",
        "lists-40",
        "lists-1000",
        "lists-5000",
        "tracks-40",
        "tracks-3000",
        "list-of-dicts-40",
    ],
)
def test_deep_nesting_is_invalid_not_a_crash(obj: dict[str, Any]) -> None:
    assert "nests deeper" in invalid(R, obj)


def test_realistic_nesting_is_accepted() -> None:
    data = norm(R, {"id": "1", "tracklist": _nested_tracks(3), "extra": _nested_lists(5)})
    assert data["tracklist"][0]["sub_tracks"][0]["sub_tracks"][0]["sub_tracks"][0] == {
        "title": "leaf"
    }


@pytest.mark.parametrize("value", [2**64, -(2**64), 10**30])
def test_integers_json_cannot_hold_are_invalid(value: int) -> None:
    assert "JSON" in invalid(A, {"id": "1", "extra": value})


# --------------------------------------------------------------------------------------
# sha256
# --------------------------------------------------------------------------------------


def test_given_sha256_is_kept_verbatim() -> None:
    record = normalise(A, {"id": "1", "name": "x", "sha256": "producer-hash"})
    assert record.sha256 == "producer-hash"
    assert "sha256" not in record.data


def test_missing_sha256_is_computed_over_canonical_json() -> None:
    record = normalise(A, {"id": "1", "name": "x", "urls": ["b", "a"]})
    expected = hashlib.sha256(orjson.dumps(record.data, option=orjson.OPT_SORT_KEYS))
    assert record.sha256 == expected.hexdigest()
    assert record.sha256 == hashlib.sha256(canonical_json(record.data)).hexdigest()


def test_null_sha256_counts_as_missing() -> None:
    assert normalise(A, {"id": "1", "sha256": None}) == normalise(A, {"id": "1"})


@pytest.mark.parametrize(("data_type", "raw", "expected"), PAIRS, ids=PAIR_IDS)
def test_computed_sha256_is_stable_across_key_order(
    data_type: DataType, raw: dict[str, Any], expected: dict[str, Any]
) -> None:
    def reorder(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reorder(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reorder(v) for v in value]
        return value

    assert normalise(data_type, reorder(raw)).sha256 == normalise(data_type, raw).sha256
    assert normalise(data_type, reorder(expected)).sha256 == normalise(data_type, raw).sha256


def test_computed_sha256_changes_with_content() -> None:
    one = normalise(A, {"id": "1", "name": "x"})
    assert normalise(A, {"id": "1", "name": "y"}).sha256 != one.sha256
    assert normalise(A, {"id": "2", "name": "x"}).sha256 != one.sha256
    # list order is content
    assert (
        normalise(A, {"id": "1", "urls": ["a", "b"]}).sha256
        != normalise(A, {"id": "1", "urls": ["b", "a"]}).sha256
    )


def test_computed_sha256_ignores_empty_fields() -> None:
    assert (
        normalise(A, {"id": "1", "name": "x", "profile": ""}).sha256
        == normalise(A, {"id": 1, "name": "x", "realname": None}).sha256
    )


@pytest.mark.parametrize("given", ["", 5, True, ["a"], {"a": 1}])
def test_bad_sha256_is_invalid(given: object) -> None:
    assert "sha256" in invalid(A, {"id": "1", "sha256": given})


def test_record_keeps_its_canonical_serialisation_outside_equality() -> None:
    record = normalise(DataType.ARTISTS, {"id": "3", "name": "N", "urls": ["u"]})
    assert record.encoded == canonical_json(record.data)
    assert record == Record(id="3", sha256=record.sha256, data=record.data)
    assert "encoded" not in repr(record)


@pytest.mark.parametrize("value", ["1", "42", "999999999999999999"])
def test_canonical_ids_pass_through(value: str) -> None:
    assert normalise(DataType.ARTISTS, {"id": value}).id == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0123", "123"), (" 7", "7"), ("9223372036854775807", "9223372036854775807")],
)
def test_non_canonical_ids_are_canonicalised(value: str, expected: str) -> None:
    assert normalise(DataType.ARTISTS, {"id": value}).id == expected


def test_canonical_json_sorts_keys_at_every_level() -> None:
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == b'{"a":{"c":3,"d":2},"b":1}'


def test_record_is_frozen() -> None:
    record = normalise(A, {"id": "1"})
    assert isinstance(record, Record)
    with pytest.raises(AttributeError):
        record.id = "2"  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# release_year and the year field
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("released", "year"),
    [
        ("1999-03-00", 1999),
        ("1999-00-00", 1999),
        ("1999-11-02", 1999),
        ("1999", 1999),
        ("19990302", 1999),
        (" 1999", 1999),
        ("1999?", 1999),
        ("Mar 1999", None),
        ("03/1999", None),
        ("99", None),
        ("199", None),
        ("0000", None),
        ("0999-01-01", None),
        ("abcd", None),
        ("", None),
        ("١٩٩٩", None),
        (None, None),
        (1999, 1999),
        (1000, 1000),
        (9999, 9999),
        (999, None),
        (10000, None),
        (0, None),
        (-1999, None),
        (True, None),
        (1999.0, None),
        ([1999], None),
        ({"#text": "1999"}, None),
    ],
)
def test_release_year(released: object, year: int | None) -> None:
    assert release_year(released) == year


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("1969", 1969),
        (1969, 1969),
        ("1969-09-26", 1969),
        ("0", None),
        ("unknown", None),
        (0, None),
        (True, None),
        ("", None),
        (None, None),
    ],
)
def test_year_field_is_an_int_or_dropped(given: object, expected: int | None) -> None:
    data = norm(M, {"@id": "1", "year": given})
    assert data.get("year") == expected
    assert norm(M, data) == data


def test_a_record_pickles_whole() -> None:
    record = normalise(R, RELEASE_NORM, version="20260301")
    back = pickle.loads(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
    assert back == record
    assert (back.version, back.encoded) == ("20260301", record.encoded)
    assert type(back) is Record


def test_with_data_keeps_everything_but_the_data() -> None:
    record = normalise(R, RELEASE_NORM, version="20260301")
    slim = record.with_data({"title": "x"})
    assert slim.data == {"title": "x"}
    assert (slim.id, slim.sha256, slim.version, slim.encoded) == (
        record.id,
        record.sha256,
        record.version,
        record.encoded,
    )


def test_sample_records_are_not_mutated_and_normalised_ones_are_reused(
    sample: tuple[DataType, list[dict[str, Any]]],
) -> None:
    data_type, raws = sample
    for raw in raws:
        given = copy.deepcopy(raw)
        record = normalise(data_type, raw)
        assert raw == given, record.id
        # The normalised shape passes through without a copy below the top level.
        again = normalise(data_type, record.data)
        assert again.data == record.data
        for key, value in record.data.items():
            if isinstance(value, dict | list):
                assert again.data[key] is value, (record.id, key)


def test_a_change_deep_in_a_list_copies_only_what_leads_to_it() -> None:
    tracks = [{"position": "A1", "title": "One"}, {"position": "A2", "title": "Two", "notes": ""}]
    given = {"id": "9", "title": "x", "genres": ["Rock"], "tracklist": tracks}
    data = normalise(R, copy.deepcopy(given)).data
    assert data["tracklist"] == [
        {"position": "A1", "title": "One"},
        {"position": "A2", "title": "Two"},
    ]
    source = normalise(R, given)
    assert source.data["genres"] is given["genres"]
    assert source.data["tracklist"] is not tracks
    assert source.data["tracklist"][0] is tracks[0]
    assert tracks[1] == {"position": "A2", "title": "Two", "notes": ""}


def test_the_first_of_two_main_release_flags_wins_in_either_order() -> None:
    raw = {"id": "1", "@is_main_release": "true", "is_main_release": False}
    assert normalise(R, raw).data["is_main_release"] == "true"
    raw = {"id": "1", "is_main_release": False, "@is_main_release": "true"}
    assert normalise(R, raw).data["is_main_release"] is False
