"""Sealed text for database columns: round trip, binding, tampering, key derivation."""

from __future__ import annotations

import pytest

from storage.errors import IntegrityError
from storage.textcipher import (
    NONCE_BYTES,
    TEXT_FORMAT_VERSION,
    TextBinding,
    TextCipher,
    derive_text_key,
)

DATA_KEY = bytes(range(32))
SHARE = bytes(range(32, 64))
QUESTION = "Is this lesion at T11 a typical hemangioma? Это гемангиома?"
HERE = TextBinding("cases", "clinical_question", "7d8f2a1c-0000-4000-8000-000000000001")


def cipher(share: bytes = SHARE, case_id: str = "case-1") -> TextCipher:
    return TextCipher(derive_text_key(DATA_KEY, share=share, case_id=case_id))


def test_seal_and_open_round_trip_with_a_fresh_nonce_each_time():
    first, second = cipher().seal(QUESTION, HERE), cipher().seal(QUESTION, HERE)
    assert first != second and first[0] == TEXT_FORMAT_VERSION
    assert QUESTION.encode() not in first
    assert len(first) == 1 + NONCE_BYTES + len(QUESTION.encode()) + 16
    assert cipher().open(first, HERE) == QUESTION == cipher().open(second, HERE)


@pytest.mark.parametrize(
    "elsewhere",
    [
        TextBinding("cases", "clinical_question", "7d8f2a1c-0000-4000-8000-000000000002"),
        TextBinding("cases", "history", HERE.row_id),
        TextBinding("case_questions", "clinical_question", HERE.row_id),
    ],
    ids=["other row", "other column", "other table"],
)
def test_a_value_copied_elsewhere_does_not_open(elsewhere: TextBinding):
    sealed = cipher().seal(QUESTION, HERE)
    with pytest.raises(IntegrityError, match="copied from another row"):
        cipher().open(sealed, elsewhere)


def test_another_case_or_share_cannot_open_it():
    sealed = cipher().seal(QUESTION, HERE)
    with pytest.raises(IntegrityError):
        cipher(case_id="case-2").open(sealed, HERE)
    with pytest.raises(IntegrityError):
        cipher(share=bytes(32)).open(sealed, HERE)
    with pytest.raises(IntegrityError):  # the raw data key is never the text key
        TextCipher(DATA_KEY).open(sealed, HERE)


@pytest.mark.parametrize("where", [0, 1, 13, -1])
def test_any_changed_byte_is_refused(where: int):
    sealed = bytearray(cipher().seal(QUESTION, HERE))
    sealed[where] ^= 0x01
    with pytest.raises(IntegrityError):
        cipher().open(bytes(sealed), HERE)


def test_truncated_values_are_refused():
    sealed = cipher().seal("", HERE)
    assert cipher().open(sealed, HERE) == ""
    with pytest.raises(IntegrityError, match="truncated"):
        cipher().open(sealed[:-1], HERE)


def test_key_material_of_the_wrong_length_is_refused():
    with pytest.raises(IntegrityError):
        derive_text_key(DATA_KEY, share=SHARE[:16], case_id="case-1")
