"""Per-function instance pools: single-flight cold starts, idle TTL, health, hot reload."""
