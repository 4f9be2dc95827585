"""Render a signed second opinion as the PDF the patient downloads.

A pure function: the caller gathers the signed opinion into an `OpinionDocument` and gets bytes
back; nothing here touches the database, storage or the web layer. The layout, the font and what
the file may and may not contain are described in docs/opinion-pdf.md.

Every datetime must be timezone-aware; the PDF prints them in UTC with an explicit "UTC".
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import Align, MethodReturnValue, XPos, YPos
from fpdf.fonts import TTFFont

# fontTools lists at INFO the glyphs it keeps when subsetting: which letters an opinion holds.
logging.getLogger("fontTools").setLevel(logging.WARNING)

PRODUCT_NAME = "Second Opinion Portal"
EMPTY = "\u2014"
"""What an empty section prints: an em dash, so a reader sees that nothing was written."""
MISSING_GLYPH = "\u25af"
"""Stands in for a character the font cannot draw (▯, a white vertical rectangle)."""

FONT_PACKAGE = "fontpkg_fira_sans"
_FONT_FACES = {
    "": "FiraSans-Regular.ttf",
    "B": "FiraSans-Bold.ttf",
    "I": "FiraSans-Italic.ttf",
}
_FAMILY = "body"
# `_Writer.clean` drops NUL, so no user text can contain this page-count placeholder.
_TOTAL_PAGES_ALIAS = "\x00N\x00"
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Mn", "Me"})

_MARGIN = 20.0
_FOOTER_MARGIN = 22.0
_LABEL_WIDTH = 38.0
_LINE = 5.2
_SMALL_LINE = 4.6
_INK = (26, 26, 26)
_MUTED = (95, 99, 104)
_ACCENT = (31, 78, 121)
_RULE = (190, 194, 199)

DISCLAIMER = (
    "This second opinion is based only on the images, reports and information provided to the "
    "specialist through the portal. The specialist has not examined you in person. It does not "
    "replace an examination by, or the advice of, your treating physician, who knows your full "
    "history and is responsible for your care. Please discuss it with them before making any "
    "decision about treatment. If your symptoms get worse or you need urgent help, contact your "
    "local emergency services."
)
MISSING_GLYPH_NOTE = (
    f"Some characters of the original text could not be shown in this PDF and appear as "
    f"{MISSING_GLYPH}. The complete text is available in the portal."
)


@dataclass(frozen=True)
class Addendum:
    """A dated note added to an opinion after it was signed."""

    at: datetime
    author: str
    text: str


@dataclass(frozen=True)
class AnsweredQuestion:
    """One of the patient's own questions and the specialist's answer."""

    question: str
    answer: str


@dataclass(frozen=True)
class OpinionDocument:
    """Everything the PDF shows: a signed opinion and the people and case it belongs to."""

    case_reference: str
    case_subject: str
    patient_name: str
    patient_birth_date: date | None
    specialist_name: str
    specialist_credentials: str
    submitted_at: datetime | None
    signed_at: datetime
    summary: str
    findings: str
    impression: str
    answers: tuple[AnsweredQuestion, ...]
    treatment_options: str
    urgency: str
    further_tests: str
    limitations: str
    content_sha256: str
    addenda: tuple[Addendum, ...] = ()
    language: str = "en"


def render_opinion_pdf(document: OpinionDocument) -> bytes:
    """Render a signed opinion as an A4 PDF.

    The same document always renders to the same bytes: the PDF's creation date is the signing
    time and nothing else in the file depends on the clock.

    Parameters
    ----------
    document
        The signed opinion. Its datetimes must be timezone-aware.

    Returns
    -------
    bytes
        The PDF file, starting with ``%PDF-``.

    Raises
    ------
    ValueError
        If a datetime in the document is naive (has no time zone).
    """
    signed_at = _utc(document.signed_at)
    with _font_files() as fonts:
        pdf = _Writer(document, fonts)
        pdf.set_creation_date(signed_at)
        pdf.add_page()
        _title_block(pdf, document)
        _section(pdf, "Summary", document.summary)
        _section(pdf, "Imaging findings", document.findings)
        _section(pdf, "Impression / diagnosis", document.impression)
        _answers(pdf, document.answers)
        _recommendations(pdf, document)
        _section(pdf, "Limitations", document.limitations)
        _addenda(pdf, document.addenda)
        _signature_block(pdf, document)
        return bytes(pdf.output())


@contextmanager
def _font_files() -> Iterator[dict[str, Path]]:
    """Yield the paths of the bundled font faces, by fpdf2 style letter."""
    package = resources.files(FONT_PACKAGE) / "files"
    with ExitStack() as stack:
        yield {
            style: stack.enter_context(resources.as_file(package / name))
            for style, name in _FONT_FACES.items()
        }


class _Writer(FPDF):
    """An A4 page set with the opinion's running header and footer and a safe text filter."""

    def __init__(self, document: OpinionDocument, fonts: dict[str, Path]) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        for style, path in fonts.items():
            self.add_font(_FAMILY, style=style, fname=path)
        self._drawable = frozenset.intersection(
            *(frozenset(font.cmap) for font in self.fonts.values() if isinstance(font, TTFFont))
        )
        self.replaced_characters = False
        self.body_top = _MARGIN
        self._case_reference = self.clean(document.case_reference)
        birth = document.patient_birth_date
        self._running_title = self.clean(document.patient_name) + (
            f", born {birth.isoformat()}" if birth else ""
        )
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=True, margin=_FOOTER_MARGIN)
        self.alias_nb_pages(_TOTAL_PAGES_ALIAS, align=Align.L)
        self.set_text_color(*_INK)
        self.set_draw_color(*_RULE)
        # Metadata ends up in file managers and search indexes: no patient data, no medical text.
        self.set_title(f"Second opinion {self._case_reference}")
        self.set_subject("Medical second opinion")
        self.set_author(self.clean(document.specialist_name))
        self.set_creator(PRODUCT_NAME)
        if document.language:
            self.set_lang(document.language)

    def clean(self, text: str) -> str:
        """Return ``text`` in a form the font can draw, marking characters it cannot."""
        text = unicodedata.normalize("NFC", text)
        text = re.sub(r"\r\n?|[\u2028\u2029\x0b\x0c\x85]", "\n", text).replace("\t", " ")
        kept: list[str] = []
        for char in text:
            if char == "\n" or ord(char) in self._drawable:
                kept.append(char)
            elif unicodedata.category(char) not in _INVISIBLE_CATEGORIES:
                kept.append(MISSING_GLYPH)
                self.replaced_characters = True
        return "".join(kept).strip()

    def header(self) -> None:
        """Name the patient on every page after the first, so loose pages stay together."""
        self.body_top = self.t_margin
        if self.page_no() == 1:
            return
        self.set_font(_FAMILY, "", 8)
        self.set_text_color(*_MUTED)
        title = self._fit(self._running_title, self.epw - self.get_string_width(PRODUCT_NAME) - 8)
        self.cell(0, 4, title, new_x=XPos.LMARGIN, new_y=YPos.TOP)
        self.cell(0, 4, PRODUCT_NAME, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.rule()
        self.ln(4)
        self.set_text_color(*_INK)
        self.body_top = self.get_y()

    def footer(self) -> None:
        """Print the page number and the case reference at the foot of every page."""
        self.set_y(-15)
        self.rule()
        self.ln(1.5)
        self.set_font(_FAMILY, "", 8)
        self.set_text_color(*_MUTED)
        page = f"Page {self.page_no()} of {_TOTAL_PAGES_ALIAS}"
        self.cell(0, 4, page, new_x=XPos.LMARGIN, new_y=YPos.TOP)
        reference = f"Second opinion {self._case_reference}"
        self.cell(0, 4, reference, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_text_color(*_INK)

    def _fit(self, text: str, width: float) -> str:
        """Shorten ``text`` with an ellipsis until it fits in ``width`` at the current font."""
        if self.get_string_width(text) <= width:
            return text
        while text and self.get_string_width(f"{text}\u2026") > width:
            text = text[:-1]
        return f"{text.rstrip()}\u2026"

    def rule(self) -> None:
        """Draw a thin horizontal line across the text width at the current position."""
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return moment.astimezone(UTC)


def _format_moment(moment: datetime | None) -> str:
    return f"{_utc(moment):%Y-%m-%d %H:%M} UTC" if moment else EMPTY


def _paragraph(pdf: _Writer, text: str, style: str = "", size: float = 10.5) -> None:
    """Print wrapped text across the full width; empty text prints the em dash."""
    pdf.set_font(_FAMILY, style, size)
    shown = pdf.clean(text) or EMPTY
    pdf.multi_cell(0, _LINE, shown, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _keep_room(pdf: _Writer, height: float) -> None:
    """Start a new page unless ``height`` still fits, so a heading never ends a page."""
    if pdf.will_page_break(height) and pdf.get_y() > pdf.body_top:
        pdf.add_page()


def _heading(pdf: _Writer, title: str) -> None:
    _keep_room(pdf, 9 + 3 * _LINE)
    pdf.ln(4)
    pdf.set_font(_FAMILY, "B", 13)
    pdf.set_text_color(*_ACCENT)
    pdf.cell(0, 7, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*_INK)
    pdf.ln(1)


def _subheading(pdf: _Writer, title: str) -> None:
    _keep_room(pdf, 6 + 2 * _LINE)
    pdf.ln(1.5)
    pdf.set_font(_FAMILY, "B", 10.5)
    pdf.multi_cell(0, _LINE, title, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _section(pdf: _Writer, title: str, text: str) -> None:
    _heading(pdf, title)
    _paragraph(pdf, text)


def _field(pdf: _Writer, label: str, value: str) -> None:
    """Print one labelled line of the title block; a long value wraps beside its label."""
    top = pdf.get_y()
    pdf.set_font(_FAMILY, "", 9.5)
    pdf.set_text_color(*_MUTED)
    pdf.multi_cell(_LABEL_WIDTH, _LINE, label, align=Align.L, new_x=XPos.RIGHT, new_y=YPos.TOP)
    pdf.set_text_color(*_INK)
    pdf.set_xy(pdf.l_margin + _LABEL_WIDTH, top)
    pdf.set_font(_FAMILY, "", 10.5)
    shown = pdf.clean(value) or EMPTY
    pdf.multi_cell(0, _LINE, shown, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(0.8)


def _title_block(pdf: _Writer, document: OpinionDocument) -> None:
    pdf.set_font(_FAMILY, "B", 9.5)
    pdf.set_text_color(*_ACCENT)
    pdf.cell(0, 5, PRODUCT_NAME, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*_INK)
    pdf.set_font(_FAMILY, "B", 22)
    pdf.cell(0, 12, "Second opinion", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    birth = document.patient_birth_date
    _field(pdf, "Case reference", document.case_reference)
    _field(pdf, "Subject", document.case_subject)
    _field(pdf, "Submitted", _format_moment(document.submitted_at))
    _field(pdf, "Signed", _format_moment(document.signed_at))
    pdf.ln(2)
    _field(pdf, "Patient", document.patient_name)
    _field(pdf, "Date of birth", birth.isoformat() if birth else EMPTY)
    pdf.ln(2)
    _field(pdf, "Specialist", document.specialist_name)
    _field(pdf, "Credentials", document.specialist_credentials)
    pdf.ln(2)
    pdf.rule()


def _answers(pdf: _Writer, answers: tuple[AnsweredQuestion, ...]) -> None:
    _heading(pdf, "Answers to your questions")
    if not answers:
        _paragraph(pdf, EMPTY)
    for number, item in enumerate(answers, start=1):
        _subheading(pdf, f"{number}. {pdf.clean(item.question) or EMPTY}")
        _paragraph(pdf, item.answer)


def _recommendations(pdf: _Writer, document: OpinionDocument) -> None:
    _heading(pdf, "Recommendations")
    _subheading(pdf, "Treatment options")
    _paragraph(pdf, document.treatment_options)
    _subheading(pdf, "Urgency")
    _paragraph(pdf, document.urgency)
    _subheading(pdf, "Further tests")
    _paragraph(pdf, document.further_tests)


def _addenda(pdf: _Writer, addenda: tuple[Addendum, ...]) -> None:
    """Print addenda in the order given; without any, the section is left out."""
    if not addenda:
        return
    _heading(pdf, "Addenda")
    for number, addendum in enumerate(addenda, start=1):
        _subheading(pdf, f"Addendum {number} \u2014 {_format_moment(addendum.at)}")
        _paragraph(pdf, f"by {pdf.clean(addendum.author) or EMPTY}", style="I", size=9.5)
        _paragraph(pdf, addendum.text)


def _signature_block(pdf: _Writer, document: OpinionDocument) -> None:
    """Print the signature, the content hash and the disclaimer, kept together on one page."""
    signer = pdf.clean(document.specialist_name) or EMPTY
    lines = [
        ("B", 10.5, f"Signed electronically by {signer} on {_format_moment(document.signed_at)}"),
        ("", 9, f"SHA-256 of the signed content: {pdf.clean(document.content_sha256) or EMPTY}"),
        ("I", 9, DISCLAIMER),
    ]
    if pdf.replaced_characters:
        lines.append(("I", 9, MISSING_GLYPH_NOTE))
    height = 12 + sum(_height(pdf, style, size, text) + 1.5 for style, size, text in lines)
    _keep_room(pdf, height)
    pdf.ln(8)
    pdf.rule()
    pdf.ln(3)
    for style, size, text in lines:
        pdf.set_font(_FAMILY, style, size)
        pdf.multi_cell(0, _SMALL_LINE, text, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1.5)


def _height(pdf: _Writer, style: str, size: float, text: str) -> float:
    pdf.set_font(_FAMILY, style, size)
    measured = pdf.multi_cell(
        0, _SMALL_LINE, text, align=Align.L, dry_run=True, output=MethodReturnValue.HEIGHT
    )
    if not isinstance(measured, float | int):
        raise TypeError(f"fpdf2 measured {measured!r} instead of a height")
    return float(measured)
