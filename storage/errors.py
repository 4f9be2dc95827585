"""Exceptions raised by the storage package; each carries a message a person can act on."""


class StorageError(Exception):
    """Base class of every storage failure."""

    default_message = "object storage failed"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)


class IntegrityError(StorageError):
    """Stored bytes are not what was written: tampered, truncated, swapped or under another key."""

    default_message = "stored object failed its integrity check (tampered, truncated or wrong key)"


class KeyUnavailable(StorageError):
    """The key provider cannot produce or unwrap a data key (unreachable, retired or refused)."""

    default_message = "the key provider could not supply the data key"


class StorageUnavailable(StorageError):
    """The object store cannot be reached or refused the request."""

    default_message = "object storage is unreachable"


class ObjectNotFound(StorageError):
    """The object key names nothing in the bucket."""

    default_message = "no such object in storage"
