"""What people read for the identifiers the portal stores and sends (``in_review``, ``spine``).

Statuses, deadline states, offer states, body regions, priorities and urgencies are stable
identifiers in the database and the API; a page shows them through the ``words`` filter, which
looks them up here and translates them into the page's language. An identifier missing here
is shown with its underscores as spaces, so a new value is readable before it is worded.
"""

from __future__ import annotations

from portal.i18n import N_, gettext

LABELS: dict[str, str] = {
    # case statuses
    "draft": N_("draft"),
    "submitted": N_("submitted"),
    "triage": N_("triage"),
    "assigned": N_("assigned"),
    "in_review": N_("in review"),
    "info_requested": N_("information requested"),
    "opinion_delivered": N_("opinion delivered"),
    "closed": N_("closed"),
    "cancelled": N_("cancelled"),
    # deadline states
    "on_track": N_("on track"),
    "due_soon": N_("due soon"),
    "overdue": N_("overdue"),
    "paused": N_("paused"),
    # offers to specialists
    "offered": N_("offered"),
    "accepted": N_("accepted"),
    "declined": N_("declined"),
    "timed_out": N_("timed out"),
    "withdrawn": N_("withdrawn"),
    "completed": N_("completed"),
    # body regions
    "head": N_("head"),
    "neck": N_("neck"),
    "spine": N_("spine"),
    "chest": N_("chest"),
    "heart": N_("heart"),
    "breast": N_("breast"),
    "abdomen": N_("abdomen"),
    "pelvis": N_("pelvis"),
    "upper_limb": N_("upper limb"),
    "lower_limb": N_("lower limb"),
    "whole_body": N_("whole body"),
    "other": N_("other"),
    # priorities and urgencies
    "standard": N_("standard"),
    "urgent": N_("urgent"),
    "routine": N_("routine"),
    "soon": N_("soon"),
    "emergency": N_("emergency"),
    # what specialists practise (reviewers.vocabulary.Specialty)
    "neuroradiology": N_("neuroradiology"),
    "musculoskeletal_radiology": N_("musculoskeletal radiology"),
    "body_radiology": N_("body radiology"),
    "cardiothoracic_radiology": N_("cardiothoracic radiology"),
    "breast_imaging": N_("breast imaging"),
    "interventional_radiology": N_("interventional radiology"),
    "nuclear_medicine": N_("nuclear medicine"),
    "spine_surgery": N_("spine surgery"),
    "neurosurgery": N_("neurosurgery"),
    "orthopaedics": N_("orthopaedics"),
    "oncology": N_("oncology"),
    "radiation_oncology": N_("radiation oncology"),
    "cardiology": N_("cardiology"),
    "neurology": N_("neurology"),
    "pulmonology": N_("pulmonology"),
    "gastroenterology": N_("gastroenterology"),
    "urology": N_("urology"),
    "gynaecology": N_("gynaecology"),
    # images a specialist reads (DICOM Modality codes)
    "MR": N_("MRI"),
    "CT": N_("CT"),
    "CR": N_("X-ray"),
    "DX": N_("digital X-ray"),
    "XA": N_("angiography"),
    "US": N_("ultrasound"),
    "MG": N_("mammography"),
    "PT": N_("PET"),
    "NM": N_("nuclear medicine scan"),
    "RF": N_("fluoroscopy"),
    "OT": N_("other images"),
    # roles
    "patient": N_("patient"),
    "specialist": N_("specialist"),
    "coordinator": N_("coordinator"),
    "admin": N_("administrator"),
    "system": N_("system"),
    "share_link": N_("share link"),
}


def word(identifier: object) -> str:
    """``identifier`` as a reader of the current language says it."""
    key = str(identifier)
    label = LABELS.get(key)
    return gettext(label) if label is not None else key.replace("_", " ")
