"""Rows of the trigger tables to values and back, shared by the SQL and in-memory stores'
checks (the signature document is stored as JSON in both)."""

from __future__ import annotations

from typing import Any

from nova.core.triggers import SignatureCheck


def signature_document(signature: SignatureCheck | None) -> dict[str, Any] | None:
    if signature is None:
        return None
    return {
        "secret_ref": signature.secret_ref,
        "header": signature.header,
        "algorithm": signature.algorithm,
        "timestamp_header": signature.timestamp_header,
        "tolerance_s": signature.tolerance_s,
    }


def signature_from(document: dict[str, Any] | None) -> SignatureCheck | None:
    if document is None:
        return None
    return SignatureCheck(
        secret_ref=str(document["secret_ref"]),
        header=str(document["header"]),
        algorithm=str(document["algorithm"]),
        timestamp_header=document.get("timestamp_header"),
        tolerance_s=int(document["tolerance_s"]),
    )
