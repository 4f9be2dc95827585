"""The pure pixel pipeline (portal.viewer.render): decoding, windows, colour, geometry, PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data.data_manager import DATA_ROOT, external_data_sources
from pydicom.dataset import Dataset
from pydicom.uid import UID

from portal.viewer import geometry, render
from portal.viewer.render import FrameNotFound, UnsupportedImage
from portal.viewer.windows import (
    IMAGE_DEFAULT,
    InvalidWindow,
    Window,
    WindowRequest,
    apply_window,
    window_request,
)
from tests.portal import samples

BONE, SOFT_TISSUE, AUTO = (WindowRequest(preset=name) for name in ("bone", "soft_tissue", "auto"))
# pydicom test files whose pixel data is damaged or beyond the installed decoders, on purpose.
KNOWN_UNDECODABLE = {
    "JPEG-lossy.dcm": "a 12-bit JPEG Extended stream libjpeg rejects (GDCM reads it)",
    "JPEG2000-embedded-sequence-delimiter.dcm": "a J2K stream with a broken header",
    "MR_truncated.dcm": "pixel data cut short",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "fewer frames than it declares",
    "badVR.dcm": "Rows is not a number",
    "meta_missing_tsyntax.dcm": "no transfer syntax",
    "nested_priv_SQ.dcm": "no image attributes",
}
# Lossless encodings of the same pixels: they must render byte for byte alike.
LOSSLESS_MR = ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"]
RGB_VARIANTS = [
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR_FULL
    "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG baseline, YBR_FULL_422
    "SC_rgb_rle.dcm",
    "SC_rgb_16bit.dcm",
    "SC_rgb_32bit.dcm",
    "SC_rgb_expb.dcm",  # big endian
    "SC_ybr_full_uncompressed.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "SC_rgb_jls_lossy_line.dcm",  # JPEG-LS near-lossless
]


def read(name: str) -> Dataset:
    return dcmread(samples.dicom_path(name))


def grey(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def pixel_data_files() -> list[Path]:
    """Every DICOM test file with pixel data that pydicom and pydicom-data hold on disk
    (``get_testdata_files`` would try to download the rest)."""
    own = [p for p in (Path(DATA_ROOT) / "test_files").rglob("*") if p.is_file()]
    extra = [Path(p) for p in external_data_sources()["pydicom-data"].get_paths("**/*", 0)]
    found = []
    for path in sorted({p for p in own + extra if p.suffix == ".dcm"}, key=lambda p: p.name):
        try:
            with path.open("rb") as source:
                header = render.read_dataset(source, header_only=True)
        except UnsupportedImage:
            continue
        if "PixelData" in header or "Rows" in header:
            found.append(path)
    return found


@pytest.mark.filterwarnings("ignore::UserWarning")  # the damaged samples make pydicom warn
def test_every_pydicom_sample_renders_or_is_refused_clearly():
    rendered, refused, syntaxes = [], {}, set()
    for path in pixel_data_files():
        with path.open("rb") as source:
            ds = render.read_dataset(source)
        for index in sorted({0, render.frame_count(ds) - 1}):
            try:
                image = Image.open(io.BytesIO(render.render_frame(ds, index=index)))
            except UnsupportedImage as exc:
                refused[path.name] = exc.message
                break
            assert image.format == "PNG" and image.mode in {"L", "RGB"}, path.name
            if geometry.pixel_aspect(ds, index) is None:
                assert image.size == (ds.Columns, ds.Rows), path.name
        else:
            rendered.append(path.name)
            syntaxes.add(UID(ds.file_meta.TransferSyntaxUID).name)
    assert set(refused) <= set(KNOWN_UNDECODABLE), refused
    assert len(rendered) >= 120
    for expected in (
        "JPEG Baseline (Process 1)",
        "JPEG Extended (Process 2 and 4)",
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
        "JPEG-LS Lossless Image Compression",
        "JPEG-LS Lossy (Near-Lossless) Image Compression",
        "JPEG 2000 Image Compression (Lossless Only)",
        "JPEG 2000 Image Compression",
        "RLE Lossless",
        "Deflated Explicit VR Little Endian",
        "Explicit VR Big Endian",
    ):
        assert expected in syntaxes


def test_refusals_name_the_problem():
    with pytest.raises(UnsupportedImage) as message:
        render.render_frame(read("JPEG-lossy.dcm"), index=0)
    assert "could not be decoded" in message.value.message
    assert "JPEG Extended" in message.value.message


def test_a_transfer_syntax_without_decoder_is_refused_by_name():
    ds = read("CT_small.dcm")
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")  # MPEG2 video
    with pytest.raises(UnsupportedImage) as refused:
        render.render_frame(ds, index=0)
    assert refused.value.message == (
        "This image's compression cannot be shown in the browser viewer "
        "(transfer syntax MPEG2 Main Profile / Main Level)."
    )


def test_an_unconverted_colour_model_is_refused():
    ds = read("SC_rgb.dcm")
    ds.PhotometricInterpretation = "HSV"
    with pytest.raises(UnsupportedImage, match="colour model"):
        render.render_frame(ds, index=0)


def test_ct_presets_window_hounsfield_units():
    ds = read("CT_small.dcm")
    bone = grey(render.render_frame(ds, index=0, window=BONE))
    soft = grey(render.render_frame(ds, index=0, window=SOFT_TISSUE))
    assert bone.shape == soft.shape == (128, 128)
    assert not np.array_equal(bone, soft)
    assert soft.mean() > bone.mean()  # a narrow soft-tissue window turns more pixels white
    explicit = WindowRequest(window=Window(400, 1800))
    assert render.render_frame(ds, index=0, window=explicit) == render.render_frame(
        ds, index=0, window=BONE
    )


def test_the_linear_window_follows_the_standard():
    values = np.array([-1000, -160, -159.5, 40, 239.5, 240, 3000], dtype=np.float32)
    out = apply_window(values, slope=1.0, intercept=0.0, window=Window(40.5, 400))
    assert out.tolist()[:2] == [0, 0] and out.tolist()[-2:] == [255, 255]
    assert 126 <= out[3] <= 129
    rescaled = apply_window(
        np.array([1024, 1064], dtype=np.uint16), slope=1.0, intercept=-1024, window=Window(0, 80)
    )
    assert rescaled.tolist() == [129, 255]  # ((0 + 0.5) / 79 + 0.5) * 255 = 129.1


def test_mr_uses_its_own_window_by_default_and_auto_on_request():
    ds = read("MR_small.dcm")  # Window Center 600, Width 1600
    frame = render.decode_frame(ds, index=0)
    assert render.chosen_window(frame, IMAGE_DEFAULT)[2] == "image"
    own = grey(render.to_png(frame))
    auto = grey(render.to_png(frame, window=AUTO))
    assert not np.array_equal(own, auto)
    low, high = np.percentile(auto, [1, 99])
    assert low <= 5 and high >= 250  # auto spans the frame's 1st to 99th percentile


def test_without_a_window_of_its_own_a_frame_gets_the_auto_window():
    frame = render.decode_frame(read("emri_small.dcm"), index=0)
    assert frame.image_window is None
    assert render.chosen_window(frame, IMAGE_DEFAULT)[2] == "auto"
    assert render.to_png(frame) == render.to_png(frame, window=AUTO)


def test_monochrome1_is_inverted():
    ds = read("CT_small.dcm")
    normal = grey(render.render_frame(ds, index=0))
    ds.PhotometricInterpretation = "MONOCHROME1"
    inverted = grey(render.render_frame(ds, index=0))
    assert np.array_equal(normal.astype(int) + inverted, np.full_like(normal, 255, dtype=int))


def test_a_real_monochrome1_radiograph_shows_bone_bright():
    ds = read("RG1_UNCR.dcm")  # a chest CR stored as MONOCHROME1
    frame = render.decode_frame(ds, index=0)
    assert frame.invert and frame.edges == geometry.EdgeLabels("R", "L", "H", "F")
    shown = render.display_pixels(frame)
    stored = frame.pixels.astype(np.float64)
    assert np.corrcoef(stored.ravel()[::97], shown.ravel()[::97].astype(np.float64))[0, 1] < 0


def test_multiframe_frames_differ_and_only_the_frame_asked_for_is_decoded():
    ds = read("emri_small.dcm")
    frames = [grey(render.render_frame(ds, index=i, window=AUTO)) for i in range(10)]
    assert len({f.tobytes() for f in frames}) == 10
    everything = ds.pixel_array
    assert np.array_equal(render.decode_frame(ds, index=7).pixels, everything[7])
    with pytest.raises(FrameNotFound, match="10 frame"):
        render.decode_frame(ds, index=10)


def test_a_frame_read_from_a_file_matches_the_whole_data_set():
    for name in ("emri_small.dcm", "color3d_jpeg_baseline.dcm", "emri_small_jpeg_2k_lossless.dcm"):
        path = samples.dicom_path(name)
        whole = render.decode_frame(read(name), index=5)
        with path.open("rb") as source:
            header = render.read_dataset(source, header_only=True)
            assert "PixelData" not in header
            alone = render.decode_frame(header, index=5, source=source)
        assert np.array_equal(whole.pixels, alone.pixels), name


def test_lossless_compressions_render_exactly_like_the_uncompressed_image():
    expected = render.render_frame(read("MR_small.dcm"), index=0)
    for name in LOSSLESS_MR:
        assert render.render_frame(read(name), index=0) == expected, name
    baseline = render.render_frame(read("US1_UNCR.dcm"), index=0)
    assert render.render_frame(read("US1_J2KR.dcm"), index=0) == baseline


def test_colour_images_render_as_rgb_whatever_their_encoding():
    reference = np.asarray(
        Image.open(io.BytesIO(render.render_frame(read("SC_rgb.dcm"), index=0))), dtype=int
    )
    assert reference.shape == (100, 100, 3)
    assert tuple(reference[5, 50]) == (255, 0, 0)  # the top band is red
    for name in RGB_VARIANTS:
        image = Image.open(io.BytesIO(render.render_frame(read(name), index=0)))
        assert image.mode == "RGB", name
        difference = np.abs(np.asarray(image, dtype=int) - reference)
        assert difference.mean() < 3, name


def test_palette_colour_is_applied():
    image = Image.open(io.BytesIO(render.render_frame(read("OBXXXX1A.dcm"), index=0)))
    pixels = np.asarray(image)
    assert image.mode == "RGB" and image.size == (800, 600)
    assert (pixels[..., 0] != pixels[..., 2]).any()  # truly coloured, not grey


def test_enhanced_multiframe_reads_its_functional_groups():
    ds = read("eCT_Supplemental.dcm")
    frame = render.decode_frame(ds, index=1)
    assert (frame.slope, frame.intercept) == (1.0, -1024.0)
    assert frame.spacing == (0.388672, 0.388672)
    assert frame.image_window is not None


def test_one_bit_images_show_black_and_white():
    shown = render.display_pixels(render.decode_frame(read("liver.dcm"), index=0))
    assert set(np.unique(shown).tolist()) == {0, 255}


def test_non_square_pixels_are_stretched_to_square_display_pixels():
    ds = read("CT_small.dcm")  # 128 x 128
    ds.PixelSpacing = [1.0, 0.5]  # rows 1 mm apart, columns 0.5 mm: each pixel twice as tall
    image = Image.open(io.BytesIO(render.render_frame(ds, index=0)))
    assert image.size == (128, 256)
    ds.PixelSpacing = [0.4, 1.2]
    assert Image.open(io.BytesIO(render.render_frame(ds, index=0))).size == (384, 128)
    del ds.PixelSpacing
    ds.PixelAspectRatio = [5, 4]  # vertical : horizontal
    assert Image.open(io.BytesIO(render.render_frame(ds, index=0))).size == (128, 160)
    ds.PixelSpacing = [0, 0]  # as some radiographs say: unknown, not a shape
    del ds.PixelAspectRatio
    assert Image.open(io.BytesIO(render.render_frame(ds, index=0))).size == (128, 128)


def test_display_size_is_bounded():
    assert geometry.display_size(512, 512, None, limit=128) == (128, 128)
    assert geometry.display_size(100, 4000, (3.0, 1.0), limit=4096) == (4000, 300)
    assert geometry.display_size(3000, 3000, (2.0, 1.0), limit=4096) == (2048, 4096)


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        ([1, 0, 0, 0, 1, 0], ("R", "L", "A", "P")),  # axial
        ([0, 1, 0, 0, 0, -1], ("A", "P", "H", "F")),  # sagittal
        ([1, 0, 0, 0, 0, -1], ("R", "L", "H", "F")),  # coronal
        ([0.7071, 0.7071, 0, 0, 0, -1], ("RA", "LP", "H", "F")),  # oblique
    ],
)
def test_edge_labels_come_from_the_orientation(orientation, expected):
    ds = Dataset()
    ds.ImageOrientationPatient = orientation
    labels = geometry.edge_labels(ds, 0)
    assert labels is not None
    assert (labels.left, labels.right, labels.top, labels.bottom) == expected


def test_thumbnails_fit_in_the_box():
    image = Image.open(
        io.BytesIO(render.to_png(render.decode_frame(read("US1_UNCR.dcm"), index=0), max_side=128))
    )
    assert max(image.size) == 128 and image.size == (128, 96)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 48), (1, 7, 3), (5, 1, 3), (33, 17, 3)])
def test_png_encoding_round_trips(shape):
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    image = Image.open(io.BytesIO(render.encode_png(pixels)))
    image.load()  # decompresses and checks every chunk's CRC
    assert image.mode == ("L" if len(shape) == 2 else "RGB")
    assert np.array_equal(np.asarray(image), pixels)


def test_the_same_input_gives_the_same_bytes():
    first = render.render_frame(read("CT_small.dcm"), index=0, window=BONE)
    second = render.render_frame(read("CT_small.dcm"), index=0, window=BONE)
    assert first == second
    assert b"tIME" not in first  # no timestamp chunk


@pytest.mark.parametrize(
    ("preset", "center", "width", "problem"),
    [
        ("bone", 40.0, None, "not both"),
        (None, 40.0, None, "both the window center and the window width"),
        (None, None, 400.0, "both"),
        (None, 40.0, 0.5, "at least 1"),
        (None, float("nan"), 400.0, "finite"),
        ("sepia", None, None, "Choose one of: auto, soft_tissue"),
    ],
)
def test_bad_window_choices_are_refused(preset, center, width, problem):
    with pytest.raises(InvalidWindow, match=problem):
        window_request(preset=preset, center=center, width=width)


def test_good_window_choices():
    assert window_request(preset=None, center=None, width=None) == IMAGE_DEFAULT
    assert window_request(preset="lung", center=None, width=None) == WindowRequest(preset="lung")
    assert window_request(preset=None, center=-600, width=1500).window == Window(-600, 1500)
