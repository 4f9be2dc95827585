"""Stored objects: the database side of encrypted object storage (keys, object rows)."""
