"""Response shapes of the viewer API."""

from __future__ import annotations

import uuid

from sqlmodel import SQLModel

from portal.i18n import gettext
from portal.intake.models import DicomInstance, DicomSeries
from portal.viewer import render
from portal.viewer.geometry import EdgeLabels
from portal.viewer.windows import IMAGE_DEFAULT, Preset, presets_for


class WindowPublic(SQLModel):
    center: float
    width: float


class PresetPublic(SQLModel):
    name: str
    label: str
    center: float | None
    """``None`` for ``auto``: computed from each frame."""
    width: float | None

    @classmethod
    def from_preset(cls, preset: Preset) -> PresetPublic:
        window = preset.window
        return cls(
            name=preset.name,
            label=gettext(preset.label),
            center=window.center if window else None,
            width=window.width if window else None,
        )


class EdgeLabelsPublic(SQLModel):
    """Patient directions at the displayed frame's edges (R/L, A/P, H/F; oblique: e.g. ``LP``)."""

    left: str
    right: str
    top: str
    bottom: str

    @classmethod
    def from_labels(cls, labels: EdgeLabels | None) -> EdgeLabelsPublic | None:
        if labels is None:
            return None
        return cls(left=labels.left, right=labels.right, top=labels.top, bottom=labels.bottom)


class InstanceView(SQLModel):
    id: uuid.UUID
    sop_instance_uid: str
    instance_number: int | None
    frames: int
    """Frames are numbered 1 to ``frames`` in the frame URL."""
    rows: int | None
    columns: int | None
    decodable: bool
    """Whether a decoder for its compression (transfer syntax) is installed."""

    @classmethod
    def from_row(cls, row: DicomInstance) -> InstanceView:
        return cls(
            id=row.id,
            sop_instance_uid=row.sop_instance_uid,
            instance_number=row.instance_number,
            frames=row.number_of_frames,
            rows=row.rows,
            columns=row.columns,
            decodable=render.transfer_syntax_supported(row.transfer_syntax_uid),
        )


class SeriesView(SQLModel):
    """A series ready for scrolling; image facts come from its middle instance."""

    id: uuid.UUID
    series_instance_uid: str
    modality: str | None
    description: str | None
    series_number: int | None
    body_part_examined: str | None
    instances: list[InstanceView]
    """In scrolling order: by Instance Number, then SOP Instance UID."""
    total_frames: int
    colour: bool | None
    default_window: WindowPublic | None
    """Monochrome: the middle image's own window, else its automatic one."""
    default_window_source: str | None
    """``image`` (the image's Window Center/Width) or ``auto``."""
    presets: list[PresetPublic]
    pixel_spacing: tuple[float, float] | None
    """``[row spacing, column spacing]`` in mm (vertical, then horizontal)."""
    pixel_aspect: float | None
    """Height over width of one stored pixel (1: square); frames are served already squared."""
    orientation: EdgeLabelsPublic | None
    problem: str | None
    """Why the middle image cannot be shown, when it cannot."""

    @classmethod
    def build(
        cls,
        series: DicomSeries,
        instances: list[DicomInstance],
        frame: render.Frame | None,
        problem: str | None,
    ) -> SeriesView:
        default, source = None, None
        if frame is not None and not frame.colour:
            window, _, source = render.chosen_window(frame, IMAGE_DEFAULT)
            default = WindowPublic(center=window.center, width=window.width)
        aspect = frame.aspect if frame is not None else None
        return cls(
            id=series.id,
            series_instance_uid=series.series_instance_uid,
            modality=series.modality,
            description=series.description,
            series_number=series.series_number,
            body_part_examined=series.body_part_examined,
            instances=[InstanceView.from_row(row) for row in instances],
            total_frames=sum(row.number_of_frames for row in instances),
            colour=frame.colour if frame is not None else None,
            default_window=default,
            default_window_source=source,
            presets=[]
            if frame is None or frame.colour
            else [PresetPublic.from_preset(p) for p in presets_for(series.modality)],
            pixel_spacing=frame.spacing if frame is not None else None,
            pixel_aspect=aspect[0] / aspect[1] if aspect is not None else None,
            orientation=EdgeLabelsPublic.from_labels(frame.edges if frame is not None else None),
            problem=problem,
        )
