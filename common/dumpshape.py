"""The shape of a Discogs XML dump, as :mod:`common.normalise` reads it: which elements
wrap lists, what their children hold, which fields are ids, references or text.

The same names are used in every dump file. Compiled with :mod:`common.normalise`.
"""

from __future__ import annotations

from typing import Final

# Wrapper element -> its child element, as in the XML dumps (same names in every file).
WRAPPERS: Final[dict[str, str]] = {
    "urls": "url",
    "namevariations": "name",
    "aliases": "name",
    "members": "name",
    "groups": "name",
    "sublabels": "label",
    "images": "image",
    "artists": "artist",
    "extraartists": "artist",
    "labels": "label",
    "genres": "genre",
    "styles": "style",
    "videos": "video",
    "formats": "format",
    "descriptions": "description",
    "tracklist": "track",
    "sub_tracks": "track",
    "identifiers": "identifier",
    "companies": "company",
}
# Lists of plain strings; every other wrapper holds objects.
TEXT_LISTS: Final = frozenset({"urls", "namevariations", "genres", "styles", "descriptions"})
# Lists of references whose element text is the referenced entity's name.
REF_LISTS: Final = frozenset({"aliases", "members", "groups", "sublabels"})
# Single references: element text is the name, attribute id the id.
REF_FIELDS: Final = frozenset({"parentLabel"})
# Fields holding another record's id.
ID_FIELDS: Final = frozenset({"id", "main_release", "master_id"})
# Fields that must hold text (numbers are accepted and kept as given).
SCALARS: Final = frozenset(
    {
        "name",
        "title",
        "realname",
        "profile",
        "country",
        "released",
        "notes",
        "data_quality",
        "contactinfo",
        "status",
        "catno",
        "role",
        "anv",
        "join",
        "position",
        "duration",
    }
)
