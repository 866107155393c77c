"""What this host has installed outside any function: the packages functions must not see."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from typing import Any

# The Python runtime's interpreter (the daemon picks /usr/bin/python3 first).
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def _ask_python(*args: str) -> Any:
    out = subprocess.run([PYTHON, *args], capture_output=True, text=True, check=False)
    return ast.literal_eval(out.stdout) if out.returncode == 0 else None


# Where the interpreter, run the ordinary way (site and all), finds yaml: on Debian the
# python3-yaml package in dist-packages. None when it has no yaml.
HOST_YAML_DIR = _ask_python(
    "-c", "import os, yaml; print(repr(os.path.dirname(os.path.dirname(yaml.__file__))))"
)
# The interpreter's own library: sys.path of `python -I -S` (stdlib zip, stdlib, lib-dynload).
STDLIB_PATH = _ask_python("-I", "-S", "-c", "import sys; print(repr(sys.path))")


def global_node_module() -> tuple[str, str] | None:
    """(folder, module) of a node module installed globally on this host, e.g. npm."""
    for folder in ("/usr/lib/node_modules", "/usr/share/nodejs", "/usr/lib/nodejs"):
        if os.path.isdir(folder):
            for name in sorted(os.listdir(folder)):
                if os.path.isfile(os.path.join(folder, name, "package.json")):
                    return folder, name
    return None
