"""``portal backup`` and ``portal restore``: the database, the keyring and every object."""
