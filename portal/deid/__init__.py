"""DICOM de-identification for blind review (PS3.15 Annex E); see docs/deidentification.md.

Pure functions: no database, no web. ``deidentify`` gives a de-identified copy of an instance,
``burned_in_risk`` says why its pixels may still identify the patient.
"""

from portal.deid.burned_in import burned_in_risk
from portal.deid.engine import deidentify, deidentify_file
from portal.deid.profile import Action, DeidOptions, action_table

__all__ = [
    "Action",
    "DeidOptions",
    "action_table",
    "burned_in_risk",
    "deidentify",
    "deidentify_file",
]
