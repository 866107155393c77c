"""The real daemon: the invoke fast path answers the route /openapi.json documents, in the
shape it documents."""

from __future__ import annotations

import httpx

from nova.api.schemas import InvokeResponse


def test_an_invoke_answers_in_the_documented_shape(api: httpx.Client) -> None:
    code = "def handler(event, context):\n    if event:\n        raise ValueError('no')\n    return 1\n"
    api.post(
        "/functions", json={"name": "shape", "runtime": "python", "code": code}
    ).raise_for_status()
    assert "/functions/{name}/invoke" in api.get("/openapi.json").json()["paths"]

    ok = api.post("/functions/shape/invoke", json=None)
    failed = api.post("/functions/shape/invoke", json={"fail": True})

    assert ok.status_code == failed.status_code == 200
    assert InvokeResponse.model_validate(ok.json()).output == 1
    error = InvokeResponse.model_validate(failed.json()).error
    assert error is not None
    assert error.type == "ValueError"
