"""Environments: the registry of organisation/project/environment and their quotas."""
