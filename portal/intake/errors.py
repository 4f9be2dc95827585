"""Why an uploaded file is refused: a stable code for machines and a sentence for the patient."""

from __future__ import annotations

from portal.i18n import gettext


class Rejected(Exception):
    """A file we refuse, with a reason a patient understands.

    Parameters
    ----------
    code : str
        Stable machine code, e.g. ``"unsupported_type"`` or ``"truncated"``; see
        ``docs/intake-validation.md`` for the full list.
    reason : str
        One plain sentence for the person who uploaded the file. It never quotes the file's
        contents (no names, IDs or UIDs). Translated here into the current language (the
        uploader's): pass a sentence already translated with ``_`` or a constant marked ``N_``.
    """

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = gettext(reason)
        super().__init__(self.reason)

    def __repr__(self) -> str:
        return f"Rejected({self.code!r}, {self.reason!r})"
