"""Why a backup or a restore stopped; each message tells the operator what to do."""


class BackupError(Exception):
    """A backup or restore cannot go on; nothing further was written."""

    default_message = "the backup or restore could not be completed"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class BackupDamaged(BackupError):
    """A file of the backup is missing, extra or not the bytes the manifest records."""

    default_message = "the backup does not match its manifest"


class RestoreRefused(BackupError):
    """The target is not fresh, or the keys cannot open the backup."""

    default_message = "refusing to restore"
