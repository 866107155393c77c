"""The example function `make run` deploys, so a fresh install has something to invoke."""

from __future__ import annotations

from nova.core.errors import FunctionNotFound
from nova.functions.service import CodeSource, FunctionService

EXAMPLE_NAME = "hello"
EXAMPLE_CODE = '''\
def handler(event, context):
    """Greets whoever is named in the event: {"name": "Ada"}."""
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    print(f"greeting {name}")
    return {"message": f"Hello, {name}!", "request_id": context.request_id}
'''


async def ensure_example(functions: FunctionService) -> bool:
    """Deploy `hello` unless a function of that name exists; True if it was created now."""
    try:
        await functions.get(EXAMPLE_NAME)
    except FunctionNotFound:
        await functions.create(
            {
                "name": EXAMPLE_NAME,
                "runtime": "python",
                "description": "Example function deployed by `nova daemon --example`",
            },
            CodeSource(code=EXAMPLE_CODE),
        )
        return True
    return False
