"""Free text of a case kept sealed in the database, under a key only this case has.

A model with sealed text has a ``<field>_sealed`` bytes column per text field; services seal
before they store and open only where the text is shown. The text key is derived from the
case's data key and a key share stored in the bucket (``docs/encryption.md``), so a database
backup alone — even with the key-encryption key — never yields the text of an erased case.

The vault reaches these helpers on the session (``bind_vault``): every request session, the
sweep and the CLI bind it, so services that write a timeline note need no extra argument.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlmodel import Session, col, select

from portal.objects.models import CaseKey, StoredObject
from portal.objects.service import case_key, record
from storage.textcipher import TextBinding, TextCipher
from storage.vault import Vault

_VAULT = "portal_vault"
_OPENED = "portal_case_texts"
_PREFETCH = ThreadPoolExecutor(max_workers=4, thread_name_prefix="case-text-keys")
"""Derives text keys ahead of need; the work is a read from the bucket and an unwrap."""


def bind_vault(session: Session, vault: Vault) -> Session:
    """Let services on ``session`` seal and open case text with ``vault``."""
    session.info[_VAULT] = vault
    return session


def session_vault(session: Session) -> Vault:
    """The vault bound to ``session`` (a programming error when there is none)."""
    vault = session.info.get(_VAULT)
    if not isinstance(vault, Vault):
        raise RuntimeError("this session has no vault bound: call portal.objects.texts.bind_vault")
    return vault


class CaseTexts:
    """Seals and opens the text columns of one case's rows."""

    def __init__(self, case_id: uuid.UUID, cipher: TextCipher) -> None:
        self.case_id = case_id
        self._cipher = cipher

    def seal(self, row: Any, field: str, value: str | None) -> None:
        """Store ``value`` sealed in ``row.<field>_sealed`` (the row's id must be known)."""
        sealed = None if value is None else self._cipher.seal(value, _binding(row, field))
        setattr(row, f"{field}_sealed", sealed)

    def open(self, row: Any, field: str) -> str | None:
        """The plaintext of ``row.<field>_sealed``; ``IntegrityError`` if it was tampered with."""
        sealed: bytes | None = getattr(row, f"{field}_sealed")
        return None if sealed is None else self._cipher.open(sealed, _binding(row, field))


def _binding(row: Any, field: str) -> TextBinding:
    if row.id is None:
        raise ValueError("seal text after the row has its id (flush first)")
    return TextBinding(row.__tablename__, field, str(row.id))


def for_case(*, session: Session, case_id: uuid.UUID) -> CaseTexts:
    """The case's text cipher, creating its data key and key share on first use.

    Creating them writes rows (the caller commits) and one object to the bucket. A session
    asks once per case: a page that opens text in several services reads the key once.
    """
    opened = _opened(session)
    if case_id in opened:
        return _ready(opened, case_id)
    vault = session_vault(session)
    for found_key, found_share in _keys_and_shares(session, [case_id]):  # the common case
        texts = opened[case_id] = _texts(vault, found_key, found_share)
        return texts
    key = session.get(CaseKey, case_id)
    if key is None or key.text_share_id is None:
        wrapped = case_key(session=session, vault=vault, case_id=case_id)
        share = record(
            session=session,
            case_id=case_id,
            stored=vault.new_text_share(case_id=str(case_id), wrapped_key=wrapped),
        )
        key = session.get(CaseKey, case_id)
        assert key is not None
        key.text_share_id = share.id
        session.add(key)
        session.flush()
        texts = opened[case_id] = _texts(vault, key, share)
        return texts
    share_row = session.get(StoredObject, key.text_share_id)
    if share_row is None:
        raise LookupError(f"case {case_id} has lost its text key share")
    texts = opened[case_id] = _texts(vault, key, share_row)
    return texts


def for_cases(*, session: Session, case_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CaseTexts]:
    """Text ciphers of many cases from one query (cases without text yet are left out).

    Unwrapping is cached by the vault, so a list shown again costs no key operations.
    """
    vault = session_vault(session)
    opened = _opened(session)
    wanted = set(case_ids)
    for case_id in wanted & opened.keys():
        _ready(opened, case_id)
    missing = list(wanted - opened.keys())
    if missing:
        rows = _keys_and_shares(session, missing)
        opened.update({key.case_id: _texts(vault, key, share) for key, share in rows})
    return {case_id: _ready(opened, case_id) for case_id in wanted if case_id in opened}


def prefetch(*, session: Session, case_id: uuid.UUID) -> None:
    """Start deriving the case's text key in the background (reading its key share from the
    bucket), so that a page's first :func:`for_case` finds it ready instead of waiting for the
    bucket after its queries. Nothing happens for a case without text yet."""
    opened = _opened(session)
    if case_id in opened:
        return
    for key, share in _keys_and_shares(session, [case_id]):
        opened[case_id] = _PREFETCH.submit(
            _cipher,
            session_vault(session),
            key.case_id,
            key.wrapped_key,
            share.object_key,
            share.sha256,
        )


def _keys_and_shares(
    session: Session, case_ids: list[uuid.UUID]
) -> Sequence[tuple[CaseKey, StoredObject]]:
    """Each case's key row with its text key share, for the cases that have both (one query)."""
    return session.exec(
        select(CaseKey, StoredObject)
        .join(StoredObject, col(StoredObject.id) == col(CaseKey.text_share_id))
        .where(col(CaseKey.case_id).in_(case_ids))
    ).all()


def forget(*, session: Session, case_id: uuid.UUID) -> None:
    """Drop the case's cipher from the session (its key is being destroyed)."""
    _opened(session).pop(case_id, None)


def _opened(session: Session) -> dict[uuid.UUID, CaseTexts | Future[CaseTexts]]:
    opened: dict[uuid.UUID, CaseTexts | Future[CaseTexts]] = session.info.setdefault(_OPENED, {})
    return opened


def _ready(opened: dict[uuid.UUID, CaseTexts | Future[CaseTexts]], case_id: uuid.UUID) -> CaseTexts:
    """The cipher, once a prefetch has finished (its error, if any, is raised here)."""
    value = opened[case_id]
    if isinstance(value, Future):
        try:
            value = value.result()
        except BaseException:
            del opened[case_id]
            raise
        opened[case_id] = value
    return value


def _texts(vault: Vault, key: CaseKey, share: StoredObject) -> CaseTexts:
    return _cipher(vault, key.case_id, key.wrapped_key, share.object_key, share.sha256)


def _cipher(
    vault: Vault, case_id: uuid.UUID, wrapped_key: bytes, share_key: str, share_sha256: str
) -> CaseTexts:
    cipher = vault.text_cipher(
        case_id=str(case_id),
        wrapped_key=wrapped_key,
        share_key=share_key,
        share_sha256=share_sha256,
    )
    return CaseTexts(case_id, cipher)
