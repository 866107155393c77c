"""Token-bucket rate limits (F13): tiers, buckets in memory or in Redis. Knows no HTTP."""
