"""The ``nova`` command line: a thin client of the HTTP API (plus ``nova daemon``).

Layout: :mod:`.main` builds the Typer app and holds the one error boundary; :mod:`.exit_codes`
is the only place failures become exit codes; :mod:`.state` carries the global options and the
injectable ports (HTTP transport, sleep) that tests replace; :mod:`.client` is the only module
that speaks HTTP; :mod:`.render` the only one that draws for people; ``commands/`` holds one
small module per command group. ``httpx`` and ``rich`` are imported only when a command runs,
so ``nova --help`` stays fast.
"""
