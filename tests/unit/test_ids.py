"""Request ids are RFC 4122 version-4 UUIDs in their canonical text form, and do not repeat."""

from __future__ import annotations

import os
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


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child reports the ids it would hand out next
        os.write(write_end, " ".join(ids.request_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {ids.request_id() for _ in range(100)}
    assert len(child) == 100
    assert not child & parent
