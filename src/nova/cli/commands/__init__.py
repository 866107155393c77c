"""One module per command group. Each imports only Typer and the stdlib at module level."""
