"""The microVM backend (not available yet: the probe says why)."""
