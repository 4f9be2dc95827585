"""Why an uploaded file is refused: a stable code for machines and a sentence for the patient."""

from __future__ import annotations


class Rejected(Exception):
    """A file we refuse, with a reason a patient understands.

    Parameters
    ----------
    code : str
        Stable machine code, e.g. ``"unsupported_type"`` or ``"truncated"``; see
        ``docs/intake-validation.md`` for the full list.
    reason : str
        One plain sentence for the person who uploaded the file. It never quotes the file's
        contents (no names, IDs or UIDs).
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"Rejected({self.code!r}, {self.reason!r})"
