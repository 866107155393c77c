"""Thin routes: parse -> service -> serialise."""
