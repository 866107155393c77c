"""Sandbox backends: where an instance's agent runs and how it is isolated."""
