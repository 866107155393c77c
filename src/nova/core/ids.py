"""Request ids: random UUIDv4s drawn from a seeded PRNG rather than os.urandom.

uuid.uuid4() costs a getrandom() syscall per call, which shows up on the invoke hot path on
virtualised hosts. Request ids need uniqueness, not secrecy, so a per-process PRNG seeded once
from the OS is enough (128 random bits per id, as in uuid4).
"""

from __future__ import annotations

import random
import uuid

_random = random.Random()  # seeded from os.urandom at construction


def request_id() -> str:
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))
