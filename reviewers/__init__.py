"""Specialists, matching and assignment, the review workflow, opinions and deadlines."""
