"""Durable jobs: work that outlives the request that asked for it (docs/jobs.md)."""
