"""Authentication and authorization: API keys, their verification, and the permission table."""
