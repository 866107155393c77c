"""Suite-wide set-up.

hypothesis is imported here, at the top of the collection, because its pytest plugin imports
it lazily in the terminal-summary hook otherwise: when no collected test uses it, that import
runs deep in pytest's stack, where CPython 3.11.0-3.11.4 (Debian 12 ships 3.11.2) fails to
compile it with "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905)
and the run errors after its tests passed.
"""

import hypothesis  # noqa: F401
