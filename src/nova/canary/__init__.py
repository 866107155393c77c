"""Automatic canary analysis of weighted aliases."""
