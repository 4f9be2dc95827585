"""The opinion PDF: what a patient reads in it, on every page, and what its metadata never holds."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader

from reviewers.pdf import (
    EMPTY,
    MISSING_GLYPH,
    Addendum,
    AnsweredQuestion,
    OpinionDocument,
    render_opinion_pdf,
)
from tests.fixtures.logs import SensitiveValues

CYRILLIC = "Гемангиома тела позвонка Th12 без признаков агрессивности"
GREEK = "Αιμαγγείωμα του σπονδύλου Θ12 χωρίς επιθετικά χαρακτηριστικά"
DIGEST = "3b5d5c3712955042212316173ccf37be800b7c7ea2a2d6d3e9d5cd7e0ad1e6f1"


@pytest.fixture(autouse=True)
def _never_logged(sensitive: SensitiveValues) -> None:
    """Rendering must not write the patient's name or medical text to any log."""
    sensitive.add("Anna Petrova", "Zinaida Uniquename", CYRILLIC, GREEK)


def sample(**changes: object) -> OpinionDocument:
    """A signed opinion on a spinal haemangioma, in English with Russian passages."""
    document = OpinionDocument(
        case_reference="SO-7KQ2MX",
        case_subject="Lesion in vertebral body Th12",
        patient_name="Anna Petrova",
        patient_birth_date=date(1980, 4, 12),
        specialist_name="Dr. Maria Keller",
        specialist_credentials="MD, consultant neuroradiologist, licence 123456 (Berlin)",
        submitted_at=datetime(2026, 11, 28, 9, 15, tzinfo=UTC),
        signed_at=datetime(2026, 12, 1, 16, 40, tzinfo=UTC),
        summary="The lesion in Th12 is a typical vertebral haemangioma.",
        findings="A 14 × 11 mm lesion ≤ 15 mm with coarse vertical trabeculae.",
        impression=f"{CYRILLIC}. Typical haemangioma, no signs of aggressiveness.",
        answers=(
            AnsweredQuestion("Нужна ли операция?", "Нет, операция не нужна (no surgery)."),
            AnsweredQuestion("Is it cancer?", "No, it is a benign vascular lesion."),
        ),
        treatment_options="No treatment is needed.",
        urgency="routine",
        further_tests="Follow-up MRI in 12 months.",
        limitations="Only the MRI of 2026-10-02 was available.",
        content_sha256=DIGEST,
        addenda=(
            Addendum(
                at=datetime(2026, 12, 3, 14, 20, tzinfo=UTC),
                author="Dr. Maria Keller",
                text="The CT of 2025 confirms the polka-dot pattern.",
            ),
        ),
        language="en",
    )
    return replace(document, **changes)  # type: ignore[arg-type]


def pages_text(pdf: bytes) -> list[str]:
    """The text of each page, with runs of whitespace (and line wraps) read as one space."""
    reader = PdfReader(io.BytesIO(pdf))
    return [" ".join(page.extract_text().split()) for page in reader.pages]


def full_text(pdf: bytes) -> str:
    return " ".join(pages_text(pdf))


def test_output_is_a_pdf_file() -> None:
    assert render_opinion_pdf(sample()).startswith(b"%PDF-")


def test_the_patient_reads_every_part_of_the_opinion_in_order() -> None:
    text = full_text(render_opinion_pdf(sample()))
    in_order = [
        "Second Opinion Portal",
        "Second opinion",
        "SO-7KQ2MX",
        "Submitted 28 Nov 2026, 09:15 UTC",
        "Signed 1 Dec 2026, 16:40 UTC",
        "Patient Anna Petrova",
        "Date of birth 12 Apr 1980",
        "Specialist Dr. Maria Keller",
        "licence 123456 (Berlin)",
        "Summary",
        "typical vertebral haemangioma",
        "Imaging findings",
        "14 × 11 mm lesion ≤ 15 mm",
        "Impression / diagnosis",
        CYRILLIC,
        "Answers to your questions",
        "1. Нужна ли операция?",
        "Нет, операция не нужна",
        "2. Is it cancer?",
        "Recommendations",
        "Treatment options No treatment is needed.",
        "Urgency routine",
        "Further tests Follow-up MRI in 12 months.",
        "Limitations",
        "Addenda",
        "Addendum 1 — 3 Dec 2026, 14:20 UTC",
        "by Dr. Maria Keller",
        "polka-dot pattern",
        "Signed electronically by Dr. Maria Keller on 1 Dec 2026, 16:40 UTC",
        f"SHA-256 of the signed content: {DIGEST}",
        "does not replace an examination",
    ]
    positions = [text.find(fragment) for fragment in in_order]
    missing = [fragment for fragment, at in zip(in_order, positions, strict=True) if at < 0]
    assert not missing
    assert positions == sorted(positions)


def test_greek_and_mixed_latin_cyrillic_paragraphs_render() -> None:
    mixed = "МРТ от 2026-10-02: lesion Th12, размер 14 × 11 mm, T2 hyperintense."
    text = full_text(render_opinion_pdf(sample(summary=f"{GREEK}. {mixed}")))
    assert GREEK in text
    assert mixed in text


def test_dates_are_printed_in_utc_whatever_zone_they_come_in() -> None:
    moscow = timezone(timedelta(hours=3))
    document = sample(signed_at=datetime(2026, 12, 1, 19, 40, tzinfo=moscow))
    text = full_text(render_opinion_pdf(document))
    assert "Signed electronically by Dr. Maria Keller on 1 Dec 2026, 16:40 UTC" in text


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        render_opinion_pdf(sample(signed_at=datetime(2026, 12, 1, 16, 40)))


def test_a_long_opinion_flows_over_pages_each_with_reference_and_number() -> None:
    paragraphs = "\n\n".join(
        f"Paragraph {n}: the vertebral body shows coarse trabeculae and fatty stroma, "
        f"unchanged against the earlier study; структура кости сохранена. " * 3
        for n in range(1, 31)
    )
    pages = pages_text(render_opinion_pdf(sample(findings=paragraphs)))
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
        assert "Second opinion SO-7KQ2MX" in text
    assert all("Anna Petrova, born 12 Apr 1980" in text for text in pages[1:])
    flowed = " ".join(pages)
    assert all(f"Paragraph {n}:" in flowed for n in range(1, 31))
    assert "Paragraph 30:" not in pages[0]


def test_a_long_unbroken_token_wraps_without_losing_characters() -> None:
    token = "DICOM-UID-" + "1234567890" * 30
    text = full_text(render_opinion_pdf(sample(limitations=token)))
    assert token in re.sub(r"\s", "", text)


def test_metadata_names_the_case_but_never_the_patient() -> None:
    document = sample(patient_name="Zinaida Uniquename", case_subject="Haemangioma Th12 suspicion")
    pdf = render_opinion_pdf(document)
    metadata = PdfReader(io.BytesIO(pdf)).metadata
    assert metadata is not None
    assert metadata.title == "Second opinion SO-7KQ2MX"
    assert metadata.creation_date == document.signed_at
    values = " ".join(str(value) for value in metadata.values())
    for private in ("Zinaida", "Uniquename", "Haemangioma", "1980"):
        assert private not in values
    assert "Zinaida Uniquename" in full_text(pdf)


def test_the_pdf_declares_the_opinion_language_for_screen_readers() -> None:
    reader = PdfReader(io.BytesIO(render_opinion_pdf(sample(language="ru"))))
    assert str(reader.root_object["/Lang"]) == "ru"


def test_the_same_document_renders_to_identical_bytes() -> None:
    assert render_opinion_pdf(sample()) == render_opinion_pdf(sample())


def test_bytes_do_not_depend_on_the_process_that_renders_them() -> None:
    # Set and dict ordering changes with the hash seed; a server restart must not change the PDF.
    script = (
        "import hashlib, sys; from reviewers.pdf import render_opinion_pdf; "
        "from tests.reviewers.test_pdf import sample; "
        "sys.stdout.write(hashlib.sha256(render_opinion_pdf(sample())).hexdigest())"
    )
    root = Path(__file__).resolve().parents[2]
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert digests == {hashlib.sha256(render_opinion_pdf(sample())).hexdigest()}


def test_a_different_signature_time_changes_the_bytes() -> None:
    later = sample(signed_at=datetime(2026, 12, 1, 16, 41, tzinfo=UTC))
    assert render_opinion_pdf(sample()) != render_opinion_pdf(later)


def test_characters_the_font_lacks_become_a_visible_mark_and_a_note(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = sample(answers=(AnsweredQuestion("Is it serious? 😟", "No 👍🏽 — 良性 (benign)."),))
    with caplog.at_level(logging.WARNING):
        text = full_text(render_opinion_pdf(document))
    assert not caplog.records  # fpdf2 would log the characters it had to drop
    assert "Is it serious? ▯" in text
    assert f"No {MISSING_GLYPH}{MISSING_GLYPH} — {MISSING_GLYPH}{MISSING_GLYPH} (benign)." in text
    assert "could not be shown in this PDF" in text


def test_invisible_characters_the_font_lacks_leave_no_mark() -> None:
    # U+FE0F asks for emoji presentation, U+2060 is a word joiner: neither is in the font.
    text = full_text(render_opinion_pdf(sample(summary="Ok\ufe0f\u2060 then")))
    assert "Ok then" in text
    assert MISSING_GLYPH not in text
    assert "could not be shown in this PDF" not in text


def test_user_text_cannot_forge_page_numbers_or_markup() -> None:
    summary = "Literal {nb} and **bold** and <b>tag</b> and \x00 control."
    text = full_text(render_opinion_pdf(sample(summary=summary)))
    assert "Literal {nb} and **bold** and <b>tag</b> and control." in text


def test_empty_sections_print_a_dash_and_no_addenda_leave_out_their_section() -> None:
    document = sample(further_tests="", limitations="  ", answers=(), addenda=())
    text = full_text(render_opinion_pdf(document))
    assert f"Further tests {EMPTY}" in text
    assert f"Limitations {EMPTY}" in text
    assert f"Answers to your questions {EMPTY}" in text
    assert "Addend" not in text


def test_an_unknown_birth_date_is_left_out_and_a_missing_submission_time_prints_a_dash() -> None:
    long = "Coarse trabeculae, fatty stroma, no soft-tissue component. " * 120
    document = sample(patient_birth_date=None, submitted_at=None, findings=long)
    pages = pages_text(render_opinion_pdf(document))
    text = " ".join(pages)
    assert f"Submitted {EMPTY}" in text
    assert "Date of birth" not in text and "born" not in text
    assert "Patient Anna Petrova Specialist Dr. Maria Keller" in text
    assert len(pages) > 1 and all(page.startswith("Anna Petrova Second") for page in pages[1:])


def test_addenda_are_numbered_in_order_with_their_dates() -> None:
    addenda = tuple(
        Addendum(
            at=datetime(2026, 12, 3 + n, 8, 5, tzinfo=UTC),
            author=f"Dr. Author {n}",
            text=f"Note number {n}.",
        )
        for n in range(1, 4)
    )
    text = full_text(render_opinion_pdf(sample(addenda=addenda)))
    headings = [f"Addendum {n} — {3 + n} Dec 2026, 08:05 UTC by Dr. Author {n}" for n in (1, 2, 3)]
    positions = [text.find(heading) for heading in headings]
    assert min(positions) >= 0
    assert positions == sorted(positions)


# --- the signature block never ends the document alone ----------------------------------------

SENTENCE = "The vertebral body shows coarse trabeculae and fatty stroma, as on the earlier study. "
LENGTHS = (0, 1, 3, 6, 10, 15, 21, 28, 36, 38, 40, 43, 46, 50, 55, 60, 66, 80, 95, 110)
"""Sentences of the last section: from empty, through every position of the signature block on
page 2 (the sample without addenda already pushes the block there), to three pages."""


def signature_page(pages: list[str]) -> str:
    """The text before the signature on the page where it starts, without the running header."""
    [page] = [text for text in pages if "Signed electronically" in text]
    assert "local emergency services" in page, "signature and disclaimer are on different pages"
    before = page.split("Signed electronically")[0]
    return before if page is pages[0] else before.split("Second Opinion Portal", 1)[1]


@pytest.mark.parametrize("sentences", LENGTHS)
def test_the_signature_always_shares_its_page_with_the_end_of_the_opinion(sentences: int) -> None:
    limitations = (SENTENCE * sentences).strip()
    pages = pages_text(render_opinion_pdf(sample(addenda=(), limitations=limitations)))
    before = signature_page(pages)
    if sentences == 0:
        assert f"Limitations {EMPTY}" in before
    else:
        assert before.rstrip().endswith("as on the earlier study.")
    # At least three lines of the last section (some 70 characters each), or all of it.
    assert "Limitations" in before or len(before) > 200


@pytest.mark.parametrize("sentences", [0, 4, 30, 44])
def test_with_addenda_the_last_addendum_goes_along_with_the_signature(sentences: int) -> None:
    addendum = Addendum(
        at=datetime(2026, 12, 3, 14, 20, tzinfo=UTC),
        author="Dr. Maria Keller",
        text=f"{SENTENCE * sentences}The CT of 2025 confirms the polka-dot pattern.",
    )
    pages = pages_text(render_opinion_pdf(sample(addenda=(addendum,))))
    before = signature_page(pages)
    assert before.rstrip().endswith("confirms the polka-dot pattern.")
    if sentences == 0:  # a short addendum moves whole, heading and all
        assert "Addenda Addendum 1 — 3 Dec 2026, 14:20 UTC by Dr. Maria Keller" in before


def test_a_short_typical_opinion_ends_with_its_last_section_above_the_signature() -> None:
    pages = pages_text(render_opinion_pdf(sample(addenda=())))
    assert len(pages) == 2
    assert "Limitations Only the MRI of 2026-10-02 was available." in signature_page(pages)
    assert "Further tests Follow-up MRI in 12 months." in pages[0]


# --- the opinion's language -------------------------------------------------------------------


def russian_sample() -> OpinionDocument:
    return sample(
        language="ru",
        case_subject="Образование в теле позвонка Th12",
        summary="Образование в Th12 — типичная гемангиома позвонка.",
        findings="Образование 14 × 11 мм с грубыми вертикальными трабекулами.",
        impression=CYRILLIC,
        answers=(AnsweredQuestion("Нужна ли операция?", "Нет, операция не нужна."),),
        treatment_options="Лечение не требуется.",
        urgency="routine",
        further_tests="Контрольная МРТ через 12 месяцев.",
        limitations="Была доступна только МРТ от 2 октября 2026 года.",
        addenda=(
            Addendum(
                at=datetime(2026, 12, 3, 14, 20, tzinfo=UTC),
                author="Д-р Мария Келлер",
                text="КТ 2025 года подтверждает картину «горошка». " * 40,
            ),
        ),
        specialist_name="Д-р Мария Келлер",
        specialist_credentials="Врач-нейрорадиолог, лицензия 123456",
    )


ENGLISH_FIXED_TEXT = [
    "Second Opinion Portal", "Second opinion", "Case reference", "Subject", "Submitted",
    "Signed", "Patient", "Date of birth", "born", "Specialist", "Credentials", "Summary",
    "Imaging findings", "Impression", "Answers to your questions", "Recommendations",
    "Treatment options", "Urgency", "routine", "Further tests", "Limitations", "Addend", "by ",
    "Page", " of ", "SHA-256 of", "This second opinion", "emergency", "Nov", "Dec", "Apr",
]  # fmt: skip


def test_a_russian_opinion_has_russian_headings_labels_dates_and_disclaimer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        pdf = render_opinion_pdf(russian_sample())
    assert not caplog.records  # fpdf2 logs the characters it drops (Babel's U+202F was one)
    pages = pages_text(pdf)
    text = " ".join(pages)
    in_order = [
        "Портал второго мнения",
        "Второе мнение",
        "Номер обращения SO-7KQ2MX",
        "Тема Образование в теле позвонка Th12",
        "Отправлено 28 нояб. 2026 г., 09:15 UTC",
        "Подписано 1 дек. 2026 г., 16:40 UTC",
        "Пациент Anna Petrova",
        "Дата рождения 12 апр. 1980 г.",
        "Специалист Д-р Мария Келлер",
        "Квалификация Врач-нейрорадиолог",
        "Кратко",
        "Описание исследований",
        "Вывод / диагноз",
        "Ответы на ваши вопросы 1. Нужна ли операция?",
        "Рекомендации Варианты лечения Лечение не требуется.",
        "Срочность планово",
        "Дополнительные исследования Контрольная МРТ",
        "Ограничения",
        "Дополнения Дополнение 1 — 3 дек. 2026 г., 14:20 UTC автор: Д-р Мария Келлер",
        "Подписано в электронном виде: Д-р Мария Келлер, 1 дек. 2026 г., 16:40 UTC",
        f"SHA-256 подписанного содержания: {DIGEST}",
        "Специалист не осматривал вас лично",
    ]
    positions = [text.find(fragment) for fragment in in_order]
    assert [f for f, at in zip(in_order, positions, strict=True) if at < 0] == []
    assert positions == sorted(positions)
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"Страница {number} из {len(pages)}" in page
        assert "Второе мнение SO-7KQ2MX" in page
    assert all("Anna Petrova, дата рождения: 12 апр. 1980 г." in page for page in pages[1:])
    assert [english for english in ENGLISH_FIXED_TEXT if english in text] == []
    metadata = PdfReader(io.BytesIO(pdf)).metadata
    assert metadata is not None and metadata.title == "Второе мнение SO-7KQ2MX"


def test_an_english_opinion_stays_english_whatever_the_request_speaks() -> None:
    from portal.i18n import speaking

    with speaking("ru"):
        text = full_text(render_opinion_pdf(sample()))
    assert "Imaging findings" in text and "Date of birth 12 Apr 1980" in text
    assert "Описание исследований" not in text and "Страница" not in text


def test_a_language_without_a_catalogue_falls_back_to_english() -> None:
    pdf = render_opinion_pdf(sample(language="de"))
    text = full_text(pdf)
    assert "Imaging findings" in text and "Signed 1 Dec 2026, 16:40 UTC" in text
    assert str(PdfReader(io.BytesIO(pdf)).root_object["/Lang"]) == "de"
