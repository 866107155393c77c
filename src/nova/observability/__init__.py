"""Logging set-up, invocation-log batching and counters."""
