"""Images that may show the patient's identity in their pixels.

De-identification changes attributes, never pixels, so an image with the name written into
it (a screenshot, an ultrasound frame, a scanned document) would still name the patient. Such
images are flagged for a person to look at before a blind reviewer sees them. The reasons are
interface text (marked with ``N_``, translated where they are shown).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from portal.i18n import N_

BURNED_IN = N_("The image says it has text burned into its pixels (Burned In Annotation: YES).")
FACE = N_("The image says it shows recognisable features such as a face.")
SECONDARY_CAPTURE = N_("A secondary capture (a screenshot or scan) often shows the patient's name.")
ULTRASOUND = N_("Ultrasound images usually show the patient's name and the date on screen.")
DOCUMENT = N_("A document (PDF or scanned report) usually names the patient.")
SCREEN = N_("The image is a screen capture, which often shows the patient's name.")
OTHER = N_("An image of modality 'other' is often a photograph or a screenshot.")
DERIVED = N_("A derived secondary image (a dose page, a 3D view) may carry text in its pixels.")

SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color Secondary Capture
    }
)
ULTRASOUND_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6",  # Ultrasound Image (retired)
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.6.3",  # Photoacoustic Image
        "1.2.840.10008.5.1.4.1.1.3",  # Ultrasound Multi-frame Image (retired)
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
    }
)
DOCUMENT_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
        "1.2.840.10008.5.1.4.1.1.104.2",  # Encapsulated CDA
    }
)
SCREEN_WORDS = ("SCREEN", "CAPTURE")
"""ImageType values such as SCREEN SAVE, SCREENSHOT or CAPTURE (vendors' dose and 3D pages)."""


def burned_in_risk(dataset: Dataset) -> str | None:
    """Why ``dataset``'s pixels may identify the patient, or None when nothing suggests it.

    In order: the image's own Burned In Annotation or Recognizable Visual Features (YES), its
    SOP class (secondary capture, ultrasound, documents), its modality (US, OT, DOC, SC), then
    its Image Type (SECONDARY, or a screen capture).
    """
    if _says_yes(dataset, "BurnedInAnnotation"):
        return BURNED_IN
    if _says_yes(dataset, "RecognizableVisualFeatures"):
        return FACE
    sop_class = _sop_class(dataset)
    modality = str(dataset.get("Modality") or "").strip().upper()
    if sop_class in SECONDARY_CAPTURE_CLASSES or modality == "SC":
        return SECONDARY_CAPTURE
    if sop_class in ULTRASOUND_CLASSES or modality == "US":
        return ULTRASOUND
    if sop_class in DOCUMENT_CLASSES or modality == "DOC":
        return DOCUMENT
    if modality == "OT":
        return OTHER
    return _image_type_risk(dataset)


def _says_yes(dataset: Dataset, keyword: str) -> bool:
    return str(dataset.get(keyword) or "").strip().upper() == "YES"


def _sop_class(dataset: Dataset) -> str:
    value = dataset.get("SOPClassUID")
    if not value:
        meta = getattr(dataset, "file_meta", None)
        value = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    return str(value or "").strip()


def _image_type_risk(dataset: Dataset) -> str | None:
    value = dataset.get("ImageType")
    if value is None or value == "":
        return None
    types = [
        str(item).strip().upper() for item in (value if isinstance(value, MultiValue) else [value])
    ]
    if any(word in item for item in types for word in SCREEN_WORDS):
        return SCREEN
    if len(types) > 1 and types[1] == "SECONDARY":
        return DERIVED
    return None
