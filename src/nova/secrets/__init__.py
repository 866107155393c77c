"""Encrypted secrets: the master key, AES-256-GCM sealing, and the service the API calls."""
