"""Validation errors worded by pydantic's error type, in the current language."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from portal import i18n
from portal.errors import NotFound, describe_validation_errors
from portal.intake.errors import Rejected
from portal.intake.sniff import SUPPORTED


class Sample(BaseModel):
    name: str = Field(min_length=2, max_length=5)
    count: int = Field(ge=1)
    kind: Literal["ct", "mr"]
    tags: list[str] = Field(default=[], max_length=1)


def errors(**values: object) -> list[dict[str, object]]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(values)
    return caught.value.errors()  # type: ignore[return-value]


def test_common_error_types_are_worded_in_english():
    with i18n.speaking("en"):
        text = describe_validation_errors(errors(name="a", count=0, tags=["x", "y"]))
    assert text == (
        "name must be at least 2 characters long; count must be at least 1; kind is required; "
        "tags must have at most 1 item"
    )


def test_common_error_types_are_worded_in_russian_with_plural_forms():
    with i18n.speaking("ru"):
        short = describe_validation_errors(errors(name="a", count="x", kind="us"))
        long = describe_validation_errors(errors(name="abcdefgh", count=2, kind="ct"))
    assert short == (
        "name: не короче 2 символов; count: должно быть целое число; "
        "kind: допустимые значения — 'ct', 'mr'"
    )
    assert long == "name: не длиннее 5 символов"


def test_an_unknown_error_type_keeps_pydantics_english_text():
    unknown = [{"type": "something_new", "loc": ("body", "field"), "msg": "Input is odd"}]
    with i18n.speaking("ru"):
        assert describe_validation_errors(unknown) == "field: Input is odd"


def test_domain_errors_and_rejections_are_translated_when_raised():
    with i18n.speaking("ru"):
        assert NotFound().message == "Не найдено."
        assert Rejected("unsupported_type", SUPPORTED).reason.startswith("Этот файл не является")
    with i18n.speaking("en"):
        assert Rejected("unsupported_type", SUPPORTED).reason == SUPPORTED
