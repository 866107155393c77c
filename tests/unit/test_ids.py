"""Request ids are RFC 4122 version-4 UUIDs in their canonical text form, and do not repeat."""

from __future__ import annotations

import uuid

from nova.core import ids


def test_request_ids_are_canonical_uuid4_strings() -> None:
    drawn = [ids.request_id() for _ in range(20_000)]

    for text in drawn:
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text
    assert len(set(drawn)) == len(drawn)
