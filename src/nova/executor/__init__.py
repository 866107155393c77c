"""invoke(request) -> result: pool slot, deadline, result classification, logging."""
