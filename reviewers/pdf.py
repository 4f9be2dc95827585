"""Render a signed second opinion as the PDF the patient downloads.

A pure function: the caller gathers the signed opinion into an `OpinionDocument` and gets bytes
back; nothing here touches the database, storage or the web layer. The layout, the font and what
the file may and may not contain are described in docs/opinion-pdf.md.

Every datetime must be timezone-aware; the PDF prints them in UTC with an explicit "UTC".
Every fixed word (headings, labels, footer, disclaimer) is gettext text rendered in the
opinion's language (``OpinionDocument.language``; English where there is no catalogue), and
dates are written as that language writes them.
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

from portal.i18n import N_, format_date, format_minute, gettext, speaking
from portal.labels import word

# fontTools lists at INFO the glyphs it keeps when subsetting: which letters an opinion holds.
logging.getLogger("fontTools").setLevel(logging.WARNING)

_ = gettext

PRODUCT_NAME = N_("Second Opinion Portal")
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
_NO_BREAK_SPACE = "\u00a0"

_MARGIN = 20.0
_FOOTER_MARGIN = 22.0
_LABEL_WIDTH = 38.0
_LINE = 5.2
_TAIL_LINES = 3
"""Lines of the last section that go with the signature block when it needs a new page."""
_SMALL_LINE = 4.6
_INK = (26, 26, 26)
_MUTED = (95, 99, 104)
_ACCENT = (31, 78, 121)
_RULE = (190, 194, 199)

DISCLAIMER = N_(
    "This second opinion is based only on the images, reports and information provided to the "
    "specialist through the portal. The specialist has not examined you in person. It does not "
    "replace an examination by, or the advice of, your treating physician, who knows your full "
    "history and is responsible for your care. Please discuss it with them before making any "
    "decision about treatment. If your symptoms get worse or you need urgent help, contact your "
    "local emergency services."
)
MISSING_GLYPH_NOTE = N_(
    "Some characters of the original text could not be shown in this PDF and appear as "
    "%(mark)s. The complete text is available in the portal."
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
    for moment in (document.submitted_at, *(item.at for item in document.addenda)):
        if moment is not None:
            _utc(moment)
    with _font_files() as fonts, speaking(document.language):
        pdf = _Writer(document, fonts)
        pdf.set_creation_date(signed_at)
        pdf.add_page()
        _title_block(pdf, document)
        _section(pdf, _("Summary"), document.summary)
        _section(pdf, _("Imaging findings"), document.findings)
        _section(pdf, _("Impression / diagnosis"), document.impression)
        _answers(pdf, document.answers)
        _recommendations(pdf, document)
        if document.addenda:
            _section(pdf, _("Limitations"), document.limitations)
            *earlier, last = document.addenda
            _addenda(pdf, tuple(earlier))
            lead = _addendum_lead(pdf, len(document.addenda), last, first=not earlier)
            _closing(pdf, document, lead, last.text)
        else:
            _closing(pdf, document, [_Lead("heading", _("Limitations"))], document.limitations)
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
        self.product_name = _(PRODUCT_NAME)
        self._case_reference = self.clean(document.case_reference)
        name, birth = document.patient_name, document.patient_birth_date
        self._running_title = self.clean(
            _("%(name)s, born %(date)s", name=name, date=format_date(birth)) if birth else name
        )
        self._reference_line = _("Second opinion %(reference)s", reference=self._case_reference)
        self.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.set_auto_page_break(auto=True, margin=_FOOTER_MARGIN)
        self.alias_nb_pages(_TOTAL_PAGES_ALIAS, align=Align.L)
        self.set_text_color(*_INK)
        self.set_draw_color(*_RULE)
        # Metadata ends up in file managers and search indexes: no patient data, no medical text.
        self.set_title(self._reference_line)
        self.set_subject(_("Medical second opinion"))
        self.set_author(self.clean(document.specialist_name))
        self.set_creator(self.product_name)
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
            elif unicodedata.category(char) == "Zs":  # e.g. U+202F, in Babel's Russian dates
                kept.append(_NO_BREAK_SPACE)
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
        product_width = self.get_string_width(self.product_name)
        title = self._fit(self._running_title, self.epw - product_width - 8)
        self.cell(0, 4, title, new_x=XPos.LMARGIN, new_y=YPos.TOP)
        self.cell(0, 4, self.product_name, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
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
        page = _("Page %(number)s of %(total)s", number=self.page_no(), total=_TOTAL_PAGES_ALIAS)
        self.cell(0, 4, page, new_x=XPos.LMARGIN, new_y=YPos.TOP)
        self.cell(0, 4, self._reference_line, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
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

    def wrapped(self, text: str, style: str = "", size: float = 10.5) -> list[str]:
        """The lines ``text`` wraps into across the full width at this font."""
        self.set_font(_FAMILY, style, size)
        lines = self.multi_cell(
            0, _LINE, text, align=Align.L, dry_run=True, output=MethodReturnValue.LINES
        )
        if not isinstance(lines, list):
            raise TypeError(f"fpdf2 wrapped {lines!r} instead of lines")
        return [str(line) for line in lines]


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: a time zone is required")
    return moment.astimezone(UTC)


def _format_moment(moment: datetime | None) -> str:
    """The moment as the language writes it, with spaces the font has (Babel's Russian dates
    hold U+202F, which Fira Sans lacks)."""
    if moment is None:
        return EMPTY
    written = format_minute(_utc(moment))
    return "".join(
        _NO_BREAK_SPACE if char != " " and unicodedata.category(char) == "Zs" else char
        for char in written
    )


def _paragraph(pdf: _Writer, text: str, style: str = "", size: float = 10.5) -> None:
    """Print wrapped text across the full width; empty text prints the em dash."""
    pdf.set_font(_FAMILY, style, size)
    shown = pdf.clean(text) or EMPTY
    pdf.multi_cell(0, _LINE, shown, align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _keep_room(pdf: _Writer, height: float) -> None:
    """Start a new page unless ``height`` still fits, so a heading never ends a page."""
    if pdf.will_page_break(height) and pdf.get_y() > pdf.body_top:
        pdf.add_page()


_HEADING_HEIGHT = 4 + 7 + 1


def _heading(pdf: _Writer, title: str) -> None:
    _keep_room(pdf, _HEADING_HEIGHT + 3 * _LINE)
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
    pdf.cell(0, 5, pdf.product_name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*_INK)
    pdf.set_font(_FAMILY, "B", 22)
    pdf.cell(0, 12, _("Second opinion"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    _field(pdf, _("Case reference"), document.case_reference)
    _field(pdf, _("Subject"), document.case_subject)
    _field(pdf, _("Submitted"), _format_moment(document.submitted_at))
    _field(pdf, _("Signed"), _format_moment(document.signed_at))
    pdf.ln(2)
    _field(pdf, _("Patient"), document.patient_name)
    if document.patient_birth_date is not None:  # unknown: left out (docs/opinion-pdf.md)
        _field(pdf, _("Date of birth"), format_date(document.patient_birth_date))
    pdf.ln(2)
    _field(pdf, _("Specialist"), document.specialist_name)
    _field(pdf, _("Credentials"), document.specialist_credentials)
    pdf.ln(2)
    pdf.rule()


def _answers(pdf: _Writer, answers: tuple[AnsweredQuestion, ...]) -> None:
    _heading(pdf, _("Answers to your questions"))
    if not answers:
        _paragraph(pdf, EMPTY)
    for number, item in enumerate(answers, start=1):
        _subheading(pdf, f"{number}. {pdf.clean(item.question) or EMPTY}")
        _paragraph(pdf, item.answer)


def _recommendations(pdf: _Writer, document: OpinionDocument) -> None:
    _heading(pdf, _("Recommendations"))
    _subheading(pdf, _("Treatment options"))
    _paragraph(pdf, document.treatment_options)
    _subheading(pdf, _("Urgency"))
    _paragraph(pdf, word(document.urgency) if document.urgency else "")
    _subheading(pdf, _("Further tests"))
    _paragraph(pdf, document.further_tests)


def _addenda(pdf: _Writer, addenda: tuple[Addendum, ...]) -> None:
    """Print addenda in the order given, under their heading."""
    for number, addendum in enumerate(addenda, start=1):
        for lead in _addendum_lead(pdf, number, addendum, first=number == 1):
            lead.print(pdf)
        _paragraph(pdf, addendum.text)


@dataclass(frozen=True)
class _Lead:
    """A heading, subheading or byline printed before the last text of the opinion."""

    kind: str
    text: str

    def print(self, pdf: _Writer) -> None:
        if self.kind == "heading":
            _heading(pdf, self.text)
        elif self.kind == "subheading":
            _subheading(pdf, self.text)
        else:
            _paragraph(pdf, self.text, style="I", size=9.5)

    def height(self, pdf: _Writer) -> float:
        if self.kind == "heading":
            return _HEADING_HEIGHT
        style, size, space = ("B", 10.5, 1.5) if self.kind == "subheading" else ("I", 9.5, 0.0)
        return space + len(pdf.wrapped(self.text, style, size)) * _LINE


def _addendum_lead(pdf: _Writer, number: int, addendum: Addendum, *, first: bool) -> list[_Lead]:
    """The heading (before the first addendum), the addendum's number and date, its author."""
    lead = [_Lead("heading", _("Addenda"))] if first else []
    title = _(
        "Addendum %(number)s \u2014 %(moment)s", number=number, moment=_format_moment(addendum.at)
    )
    author = pdf.clean(addendum.author) or EMPTY
    return [*lead, _Lead("subheading", title), _Lead("byline", _("by %(author)s", author=author))]


def _closing(pdf: _Writer, document: OpinionDocument, lead: list[_Lead], text: str) -> None:
    """Print the last section and the signature block, never leaving the block alone on a page.

    The block (signature, hash, disclaimer) is kept on one page. When it does not fit after the
    last section, the section's last lines (the whole section, heading included, when it is
    short) move to the next page with it, so that page never holds the block alone.
    """
    lines = pdf.wrapped(pdf.clean(text) or EMPTY)
    block = _signature_lines(pdf, document)
    block_height = _block_height(pdf, block)
    lead_height = sum(item.height(pdf) for item in lead)
    whole = lead_height + len(lines) * _LINE + block_height
    if len(lines) <= _TAIL_LINES:
        _keep_room(pdf, whole)
    for item in lead:
        item.print(pdf)
    for index, line in enumerate(lines):
        rest = len(lines) - index
        if index > 0 and rest <= _TAIL_LINES:
            _keep_room(pdf, rest * _LINE + block_height)
        pdf.set_font(_FAMILY, "", 10.5)
        pdf.cell(0, _LINE, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _keep_room(pdf, block_height)
    _signature(pdf, block)


_Line = tuple[str, float, str]


def _signature_lines(pdf: _Writer, document: OpinionDocument) -> list[_Line]:
    signer = pdf.clean(document.specialist_name) or EMPTY
    digest = pdf.clean(document.content_sha256) or EMPTY
    signed = _(
        "Signed electronically by %(name)s on %(moment)s",
        name=signer,
        moment=_format_moment(document.signed_at),
    )
    lines: list[_Line] = [
        ("B", 10.5, signed),
        ("", 9, _("SHA-256 of the signed content: %(digest)s", digest=digest)),
        ("I", 9, _(DISCLAIMER)),
    ]
    if pdf.replaced_characters:
        lines.append(("I", 9, _(MISSING_GLYPH_NOTE, mark=MISSING_GLYPH)))
    return lines


def _block_height(pdf: _Writer, lines: list[_Line]) -> float:
    return 12 + sum(_height(pdf, style, size, text) + 1.5 for style, size, text in lines)


def _signature(pdf: _Writer, lines: list[_Line]) -> None:
    """Print the signature, the content hash and the disclaimer."""
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
