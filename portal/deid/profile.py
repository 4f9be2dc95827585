"""The actions table: PS3.15 Table E.1-1 with the options a blind review uses, in one place.

The Basic Application Confidentiality Profile column is the one ``dicom-anonymizer`` ships for
DICOM 2026c (``dicomanonymizer.dicom_anonymization_databases.dicomfields_2026c``, parsed from
the standard by its authors). That package carries no option columns, so the three option
columns we use are written here from the same table (they were checked against the 2024b
release, see docs/deidentification.md). Nothing else in ``portal.deid`` decides what happens to
an attribute: the engine asks :func:`action_table` and applies the answer.

Codes of the standard (E.1.1): X remove, Z zero length, D dummy, U replace UID, K keep,
C clean; ``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D`` and ``X/Z/U*`` leave the choice to whether the
attribute is Type 1, 2 or 3 in the instance's IOD, which we do not look up per instance. We
resolve them the same way every time (:data:`COMBINED`): never X when the table allows Z
(an empty attribute carries nothing and keeps a Type 2 attribute valid), D where only X or D
is allowed (keeps a Type 1 attribute valid), and ``X/Z/U*`` (the image references) as U: the
references are kept with their UIDs replaced, so a localizer still points at its images.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from dicomanonymizer.dicom_anonymization_databases import dicomfields_2026c as basic_table
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.tag import BaseTag, Tag

STANDARD_RELEASE = "2026c"
"""The DICOM release of the Basic Profile column (``dicom-anonymizer``'s newest table)."""

OPTION_COLUMNS_RELEASE = "2024b"
"""The DICOM release our option columns below were checked against."""


class Action(StrEnum):
    """What happens to one attribute (PS3.15 E.1.1, plus date shifting)."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    REPLACE_UID = "U"
    KEEP = "K"
    CLEAN = "C"
    SHIFT_DATE = "shift"


@dataclass(frozen=True)
class DeidOptions:
    """The profile's options (PS3.15 E.3); a blind review uses all three.

    ``retain_modified_dates``: Retain Longitudinal Temporal Information with Modified Dates
    (E.3.6): dates and date-times are shifted by a per-case number of whole days.
    ``clean_descriptors``: Clean Descriptors (E.3.5): short descriptions (study, series,
    protocol) are kept with identifying words taken out; free text is removed or blanked.
    ``retain_device_identity``: Retain Device Identity (E.3.8): the scanner's names, serial
    numbers and calibration are kept (AE titles are not: they name the hospital's network).
    """

    retain_modified_dates: bool = True
    clean_descriptors: bool = True
    retain_device_identity: bool = True


COMBINED: dict[str, Action] = {
    "X/Z": Action.EMPTY,
    "Z/D": Action.EMPTY,
    "X/Z/D": Action.EMPTY,
    "X/D": Action.DUMMY,
    "X/Z/U*": Action.REPLACE_UID,
}
_SINGLE = {"X": Action.REMOVE, "Z": Action.EMPTY, "D": Action.DUMMY, "U": Action.REPLACE_UID}
_LIBRARY_GROUPS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}

# Table E.1-1, column "Clean Descriptors Opt.": every attribute marked C.
CLEAN_DESCRIPTORS = """
AcquisitionComments AcquisitionDeviceProcessingDescription AcquisitionFieldOfViewLabel
AcquisitionProtocolDescription AdditionalPatientHistory AdmittingDiagnosesCodeSequence
AdmittingDiagnosesDescription Allergies AnnotationGroupDescription AnnotationGroupLabel
BeamDescription BolusDescription ClinicalTrialSeriesDescription
ClinicalTrialTimePointDescription CommentsOnRadiationDose CommentsOnThePerformedProcedureStep
CompensatorDescription ConceptualVolumeCombinationDescription ConceptualVolumeDescription
ContainerDescription ContrastBolusAgent ContributionDescription DecompositionDescription
DerivationDescription DeviceSettingDescription DischargeDiagnosisDescription
DisplacementReferenceLabel DoseReferenceDescription EntityDescription EntityLabel
EntityLongLabel EntityName EquipmentFrameOfReferenceDescription FilterLookupTableDescription
FixationDeviceDescription FractionGroupDescription FractionationNotes FrameComments
IdentifyingComments ImageComments ImagingServiceRequestComments Impressions InterlockDescription
InterlockOriginDescription InterpretationDiagnosisDescription InterpretationText LabelText
LongDeviceDescription MakerNote MedicalAlerts MultienergyAcquisitionDescription Occupation
PatientComments PatientSetupPhotoDescription PatientState
PatientTreatmentPreparationMethodDescription
PatientTreatmentPreparationProcedureParameterDescription PerformedProcedureStepDescription
PositionAcquisitionTemplateDescription PositionAcquisitionTemplateName PrescriptionDescription
PrescriptionNotes PrescriptionNotesSequence PriorTreatmentDoseDescription ProtocolName
PyramidDescription PyramidLabel ROIDescription ROIGenerationDescription ROIName
ROIObservationDescription ROIObservationLabel RTPhysicianIntentNarrative RTPlanDescription
RTPlanLabel RTPlanName RTPrescriptionLabel RTToleranceSetLabel RTTreatmentApproachLabel
RadiationDoseIdentificationLabel RadiationDoseInVivoMeasurementLabel
RadiationGenerationModeDescription RadiationGenerationModeLabel ReasonForOmissionDescription
ReasonForRequestedProcedureCodeSequence ReasonForStudy ReasonForSuperseding
ReasonForTheAttributeModification ReasonForTheImagingServiceRequest
ReasonForTheRequestedProcedure ReasonForVisit ReasonForVisitCodeSequence
RequestAttributesSequence RequestedContrastAgent RequestedProcedureComments
RequestedProcedureDescription RequestedSeriesDescription
RespiratoryMotionCompensationTechniqueDescription ResultsComments
ScheduledProcedureStepDescription SelectorLOValue SelectorLTValue SelectorSHValue
SelectorSTValue SelectorUTValue SeriesDescription ServiceEpisodeDescription
SetupTechniqueDescription ShieldingDeviceDescription SpecimenDetailedDescription
SpecimenShortDescription StructureSetDescription StructureSetLabel StructureSetName
StudyComments StudyDescription TreatmentPositionGroupLabel TreatmentSite TreatmentSites
TreatmentTechniqueNotes TreatmentToleranceViolationDescription UserContentLabel
UserContentLongLabel VisitComments WaveformFilterDescription
"""

# Of those, we clean only what a short label or code can hold (:data:`CLEANABLE_VRS`): the
# identifying words we know of are taken out of it (portal/deid/descriptors.py). Free text (LT,
# ST, UT, OB) cannot be cleaned reliably, nor can these short attributes that describe the
# patient as a person rather than the examination: all of them keep the Basic Profile's action
# (removed, blanked or a dummy).
PATIENT_NARRATIVE = """
AdmittingDiagnosesDescription Allergies DischargeDiagnosisDescription MedicalAlerts Occupation
PatientState ReasonForStudy ReasonForTheImagingServiceRequest ReasonForTheRequestedProcedure
ServiceEpisodeDescription
"""
CLEANABLE_VRS = frozenset({"SH", "LO", "CS", "UC", "SQ"})
"""SQ: a cleaned sequence keeps its items and the table is applied inside them."""

# Table E.1-1, column "Rtn. Dev. Id. Opt.": attributes marked K.
DEVICE_KEEP = """
BeamHoldTransitionDateTime CalibrationDate CalibrationDateTime CalibrationTime CassetteID
DateOfInstallation DateOfLastCalibration DateOfLastDetectorCalibration DateOfManufacture
DateTimeOfLastCalibration DetectorID DeviceDescription DeviceLabel DeviceSerialNumber DeviceUID
GantryID GeneratorID LensMake LensModel LensSerialNumber LensSpecification
ManufacturerDeviceClassUID ManufacturerDeviceIdentifier ModifyingDeviceID ModifyingSystem
PerformedStationGeographicLocationCodeSequence PerformedStationName
PerformedStationNameCodeSequence PlateID ScheduledProcedureStepLocation
ScheduledStationGeographicLocationCodeSequence ScheduledStationName
ScheduledStationNameCodeSequence ScheduledStudyLocation SourceManufacturer SourceSerialNumber
StationName TimeOfLastCalibration TimeOfLastDetectorCalibration TransducerIdentificationSequence
TreatmentMachineName UDISequence UniqueDeviceIdentifier XRayDetectorID XRayDetectorLabel
XRaySourceID
"""

# ... and the ones marked C: AE titles. An AE title cannot be cleaned (it is a name on the
# hospital's network and nothing else), so these keep the Basic Profile's action.
DEVICE_CLEAN = """
DestinationAE NetworkID Originator PerformedStationAETitle ReceivingAE RequestingAE
RetrieveAETitle ScheduledStationAETitle ScheduledStudyLocationAETitle SelectorAEValue
StationAETitle
"""

# Column "Rtn. Long. Modif. Dates Opt." marks C every DA, DT and TM attribute of the table
# except these (and three non-date attributes: Certified Timestamp and Frame Origin Timestamp,
# OB, and Timezone Offset From UTC, which a whole-day shift cannot clean: they keep the Basic
# Profile's action). The rule is written instead of the list so rows added to the Basic column
# in later releases are shifted too.
DATES_NOT_SHIFTED = frozenset({"PatientBirthDate", "PatientBirthTime", "GPSTimeStamp"})
DATE_VRS = frozenset({"DA", "DT", "TM"})


@dataclass(frozen=True)
class Masked:
    """A repeating-group row of the table, e.g. Overlay Data (60xx,3000)."""

    group: int
    element: int
    group_mask: int
    element_mask: int
    code: str

    def matches(self, tag: BaseTag) -> bool:
        return (tag.group & self.group_mask == self.group & self.group_mask) and (
            tag.element & self.element_mask == self.element & self.element_mask
        )


@dataclass(frozen=True)
class ActionTable:
    """The resolved action of every row of Table E.1-1 for one choice of options."""

    options: DeidOptions
    actions: dict[BaseTag, Action]
    basic: dict[BaseTag, Action]
    """The Basic Profile's action (combinations resolved): what an option falls back to."""
    masked: tuple[Masked, ...]

    def action_for(self, tag: BaseTag) -> Action | None:
        """The action for ``tag``, or None when the table does not list it."""
        found = self.actions.get(tag)
        if found is not None:
            return found
        for row in self.masked:
            if row.matches(tag):
                return _SINGLE[row.code]
        return None

    def basic_action(self, tag: BaseTag) -> Action:
        """What the Basic Profile alone does to ``tag`` (the fallback of C)."""
        return self.basic.get(tag, Action.REMOVE)


def basic_profile_codes() -> tuple[dict[BaseTag, str], tuple[Masked, ...]]:
    """The Basic Profile column as ``{tag: code}`` plus its repeating-group rows."""
    codes: dict[BaseTag, str] = {}
    masked: list[Masked] = []
    for group_name, code in _LIBRARY_GROUPS.items():
        for row in getattr(basic_table, group_name):
            if len(row) == 2:
                codes[Tag(row[0], row[1])] = code
            else:
                masked.append(Masked(row[0], row[1], row[2], row[3], code))
    return codes, tuple(masked)


def _keyword_tags(text: str) -> frozenset[BaseTag]:
    tags = []
    for keyword in text.split():
        tag = tag_for_keyword(keyword)
        if tag is None:  # pragma: no cover - a typo here is caught by the tests
            raise ValueError(f"unknown DICOM keyword in the actions table: {keyword}")
        tags.append(Tag(tag))
    return frozenset(tags)


def _vr(tag: BaseTag) -> str | None:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return None


def _date_tags(codes: dict[BaseTag, str]) -> frozenset[BaseTag]:
    skipped = _keyword_tags(" ".join(DATES_NOT_SHIFTED))
    return frozenset(tag for tag in codes if _vr(tag) in DATE_VRS and tag not in skipped)


def resolve(code: str) -> Action:
    """The action for a Basic Profile code, combinations resolved as :data:`COMBINED` says."""
    return _SINGLE.get(code) or COMBINED[code]


@cache
def action_table(options: DeidOptions = DeidOptions()) -> ActionTable:
    """Table E.1-1 resolved for ``options``: the single place an attribute's fate is decided.

    Where two options speak of one attribute (a calibration date is K for Retain Device
    Identity and C for Modified Dates) the date is shifted: every date leaves shifted.
    """
    codes, masked = basic_profile_codes()
    basic = {tag: resolve(code) for tag, code in codes.items()}
    actions = dict(basic)
    if options.clean_descriptors:
        narrative = _keyword_tags(PATIENT_NARRATIVE)
        for tag in _keyword_tags(CLEAN_DESCRIPTORS) - narrative:
            if _vr(tag) in CLEANABLE_VRS:
                actions[tag] = Action.CLEAN
    if options.retain_device_identity:
        for tag in _keyword_tags(DEVICE_KEEP):
            actions[tag] = Action.KEEP
    if options.retain_modified_dates:
        for tag in _date_tags(codes):
            actions[tag] = Action.SHIFT_DATE
    return ActionTable(options=options, actions=actions, basic=basic, masked=masked)
