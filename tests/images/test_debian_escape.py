"""The escape suite (tests/escape) once more, with python instances on a debian image.

Its tests are taken from the suite's module, not copied, and run with this directory's
``sandbox``, ``shared_sandbox`` and ``probes`` fixtures (conftest.py): every isolation property
is checked on both kinds of root, and a test added to the suite is checked here too.
"""

from __future__ import annotations

import pytest

from tests.escape import test_container_escape as suite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.escape,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(600),
]

# Not about the root: network refusal is the backend's (tests/escape covers it), and node
# stays on the host root here (CI builds only the python image).
_NOT_ABOUT_THE_ROOT = {
    "test_refuses_network_and_hidden_interpreters",
    "test_node_functions_run_in_the_same_sandbox",
}

for _name, _test in vars(suite).items():
    if _name.startswith("test_") and callable(_test) and _name not in _NOT_ABOUT_THE_ROOT:
        globals()[_name] = _test
