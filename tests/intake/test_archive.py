"""ZIP archives are planned in place: unsafe entries refused, bombs caught, CDs checked."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from portal.intake.archive import ArchiveLimits, ArchivePlan, plan_zip
from portal.intake.errors import Rejected

CD_FOLDERS = ("77654033", "98892001", "98892003")  # what the root DICOMDIR references


def _cd_folder() -> Path:
    path = get_testdata_file("DICOMDIR", download=False)  # pydicom's dicomdirtests/
    assert path is not None
    return Path(str(path)).parent


def _zip(*members: tuple[str | zipfile.ZipInfo, bytes], deflate: bool = True) -> bytes:
    out = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return out.getvalue()


def _cd_zip(*, skip: set[str] = frozenset(), rename=lambda name: name, prefix: str = "") -> bytes:
    """The root DICOMDIR and the three patient folders it references, zipped in memory."""
    folder = _cd_folder()
    members = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        in_cd = relative == "DICOMDIR" or relative.split("/")[0] in CD_FOLDERS
        if path.is_file() and in_cd and relative not in skip:
            members.append((prefix + rename(relative), path.read_bytes()))
    return _zip(*members)


def _plan(data: bytes, limits: ArchiveLimits | None = None) -> ArchivePlan:
    return plan_zip(io.BytesIO(data), limits or ArchiveLimits())


def _read_all(plan: ArchivePlan) -> dict[str, bytes]:
    contents = {}
    for entry in plan.entries:
        with entry.open() as stream:
            contents[entry.name] = stream.read()
    return contents


def _refused_archive(data: bytes, limits: ArchiveLimits | None = None) -> Rejected:
    with pytest.raises(Rejected) as refused:
        _plan(data, limits)
    return refused.value


def _codes(plan: ArchivePlan) -> dict[str, str]:
    return {entry.name: entry.error.code for entry in plan.rejected}


# -- hospital CDs ------------------------------------------------------------------------------


def test_a_complete_cd_references_every_file_and_reads_back_identical_bytes():
    plan = _plan(_cd_zip())
    assert plan.dicomdir_present is True
    assert plan.referenced == 31 and plan.missing == [] and plan.rejected == []
    assert len(plan.entries) == 31
    assert "DICOMDIR" not in {entry.name for entry in plan.entries}
    folder = _cd_folder()
    for name, data in _read_all(plan).items():
        assert data == (folder / name).read_bytes()


def test_a_cd_missing_a_referenced_file_reports_it():
    plan = _plan(_cd_zip(skip={"98892003/MR700/4648", "77654033/CR1/6154"}))
    assert plan.referenced == 31
    assert plan.missing == ["77654033/CR1/6154", "98892003/MR700/4648"]
    assert len(plan.entries) == 29


def test_file_names_match_the_dicomdir_whatever_their_case():
    plan = _plan(_cd_zip(rename=str.lower))
    assert plan.referenced == 31 and plan.missing == []
    assert plan.entries[0].name == "77654033/cr1/6154"


def test_iso9660_version_suffixes_still_match():
    plan = _plan(_cd_zip(rename=lambda name: name if name == "DICOMDIR" else name + ";1"))
    assert plan.missing == []


def test_a_dicomdir_in_a_subfolder_resolves_paths_from_its_folder():
    plan = _plan(_cd_zip(prefix="Patient CD/"))
    assert plan.dicomdir_present and plan.referenced == 31 and plan.missing == []
    assert all(entry.name.startswith("Patient CD/") for entry in plan.entries)


def test_files_the_dicomdir_does_not_reference_are_kept_after_the_referenced_ones():
    cd = zipfile.ZipFile(io.BytesIO(_cd_zip()))
    members = [("README.PDF", b"%PDF-1.4 report")] + [
        (name, cd.read(name)) for name in cd.namelist()
    ]
    plan = _plan(_zip(*members))
    names = [entry.name for entry in plan.entries]
    assert names[-1] == "README.PDF" and len(names) == 32
    assert plan.missing == []


def test_two_cds_in_one_archive_are_both_counted():
    folder = _cd_folder()
    whole = [
        (path.relative_to(folder).as_posix(), path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.startswith("DICOMDIR-")
    ]
    plan = _plan(_zip(*whole))
    assert plan.referenced == 31 + 50  # root DICOMDIR and TINY_ALPHA/DICOMDIR
    assert plan.missing == []


def test_an_unreadable_dicomdir_is_reported_and_the_files_still_planned():
    plan = _plan(_zip(("DICOMDIR", b"not an index"), ("a.dcm", b"x"), ("b.dcm", b"y")))
    assert plan.dicomdir_present is False and plan.referenced == 0
    assert _codes(plan) == {"DICOMDIR": "malformed_dicom"}
    assert [entry.name for entry in plan.entries] == ["a.dcm", "b.dcm"]


def test_without_a_dicomdir_every_file_is_planned_in_archive_order():
    plan = _plan(_zip(("z.pdf", b"1"), ("a/b.jpg", b"22"), ("m.dcm", b"333"), ("dir/", b"")))
    assert [(entry.name, entry.size) for entry in plan.entries] == [
        ("z.pdf", 1),
        ("a/b.jpg", 2),
        ("m.dcm", 3),
    ]
    assert (plan.dicomdir_present, plan.referenced, plan.missing) == (False, 0, [])


# -- unsafe entries ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../evil.dcm",
        "/etc/cron.d/evil",
        "C:\\Windows\\evil.dll",
        "C:evil.dcm",
        "scans\\..\\..\\evil.dcm",
        "scans/../../evil.dcm",
        "//server/share/evil.dcm",
        "scan.dcm:hidden",
        "bad\x1b[2Jname.dcm",  # a terminal escape sequence
    ],
)
def test_paths_that_could_escape_are_refused_without_stopping_the_others(name):
    plan = _plan(_zip((name, b"evil"), ("good.dcm", b"good")))
    assert [entry.name for entry in plan.entries] == ["good.dcm"]
    assert [entry.error.code for entry in plan.rejected] == ["unsafe_path"]


def test_backslash_separators_and_dot_segments_are_normalised():
    plan = _plan(_zip(("CD\\DICOM\\IM0001", b"1"), ("./a//b/./c.dcm", b"2")))
    assert [entry.name for entry in plan.entries] == ["CD/DICOM/IM0001", "a/b/c.dcm"]


def test_symlinks_are_refused():
    link = zipfile.ZipInfo("scans/link.dcm")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    plan = _plan(_zip((link, b"/etc/passwd"), ("real.dcm", b"data")))
    assert _codes(plan) == {"scans/link.dcm": "symlink"}
    assert [entry.name for entry in plan.entries] == ["real.dcm"]


def test_device_files_are_refused():
    fifo = zipfile.ZipInfo("pipe")
    fifo.external_attr = 0o010644 << 16
    assert _codes(_plan(_zip((fifo, b""), ("a", b"1")))) == {"pipe": "unsafe_path"}


def test_a_name_appearing_twice_is_refused_the_second_time():
    plan = _plan(_zip(("a.dcm", b"first"), ("a\\b", b"x"), ("a/b", b"second")))
    assert [entry.name for entry in plan.entries] == ["a.dcm", "a/b"]
    assert _codes(plan) == {"a/b": "unsafe_path"}


def _set_encrypted(data: bytes, name: str) -> bytes:
    """Set the 'encrypted' flag of an entry in its local header and its directory record."""
    raw = bytearray(data)
    encoded = name.encode()
    for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        at = raw.find(signature)
        while at >= 0:
            if raw[at + name_at : at + name_at + len(encoded)] == encoded:
                raw[at + flags_at] |= 0x01
            at = raw.find(signature, at + 1)
    return bytes(raw)


def test_an_encrypted_entry_is_refused_and_the_others_kept():
    data = _set_encrypted(_zip(("secret.dcm", b"x" * 100), ("open.dcm", b"y")), "secret.dcm")
    plan = _plan(data)
    assert _codes(plan) == {"secret.dcm": "encrypted_archive"}
    assert [entry.name for entry in plan.entries] == ["open.dcm"]


def test_a_password_protected_archive_is_refused_as_a_whole():
    data = _zip(("a.dcm", b"1"), ("b.dcm", b"2"))
    data = _set_encrypted(_set_encrypted(data, "a.dcm"), "b.dcm")
    assert _refused_archive(data).code == "encrypted_archive"


def test_unsupported_compression_is_explained():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.dcm", b"x" * 1000, compress_type=zipfile.ZIP_BZIP2)
        archive.writestr("b.dcm", b"y")
    assert _codes(_plan(out.getvalue())) == {"a.dcm": "unsupported_compression"}


@pytest.mark.parametrize(
    "data",
    [b"", b"PK\x03\x04 not really", b"%PDF-1.4", os.urandom(4096)],
    ids=["empty", "bare-signature", "pdf", "random"],
)
def test_what_is_not_a_zip_is_refused(data):
    assert _refused_archive(data).code == "malformed_archive"


# -- nested archives ---------------------------------------------------------------------------


@pytest.mark.parametrize("inner_deflated", [True, False], ids=["deflated", "stored"])
def test_a_zip_inside_the_zip_is_opened_one_level_deep(inner_deflated):
    inner = _zip(("scan1.dcm", b"one" * 1000), ("scan2.dcm", b"two" * 500))
    outer = _zip(("report.pdf", b"%PDF"), ("cds/inner.zip", inner), deflate=inner_deflated)
    plan = _plan(outer)
    assert _read_all(plan) == {
        "report.pdf": b"%PDF",
        "cds/inner.zip/scan1.dcm": b"one" * 1000,
        "cds/inner.zip/scan2.dcm": b"two" * 500,
    }
    assert plan.rejected == []


def test_a_zip_inside_a_zip_inside_the_zip_is_refused():
    deepest = _zip(("x.dcm", b"x"))
    inner = _zip(("deeper.zip", deepest), ("ok.dcm", b"ok"))
    plan = _plan(_zip(("inner.zip", inner)))
    assert [entry.name for entry in plan.entries] == ["inner.zip/ok.dcm"]
    assert _codes(plan) == {"inner.zip/deeper.zip": "nested_archive"}


def test_an_inner_archive_with_a_dicomdir_is_checked_for_completeness():
    plan = _plan(_zip(("hospital.zip", _cd_zip(skip={"98892001/CT5N/2062"}))))
    assert plan.dicomdir_present and plan.referenced == 31
    assert plan.missing == ["hospital.zip/98892001/CT5N/2062"]


def test_nested_entries_count_against_the_entry_limit():
    inner = _zip(*[(f"{n}.dcm", b"x") for n in range(8)])
    outer = _zip(("inner.zip", inner), ("a", b"1"), ("b", b"2"))
    assert len(_plan(outer, ArchiveLimits(max_entries=11)).entries) == 10
    assert _refused_archive(outer, ArchiveLimits(max_entries=10)).code == "archive_limits"


# -- limits and bombs --------------------------------------------------------------------------


def _zeros_entry(size: int) -> bytes:
    """A ZIP with ``size`` zero bytes in one entry, compressed as it is written."""
    out = io.BytesIO()
    chunk = bytes(1024 * 1024)
    archive = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
    with archive, archive.open("zeros.dcm", "w", force_zip64=True) as entry:
        for _ in range(size // len(chunk)):
            entry.write(chunk)
    return out.getvalue()


def test_a_gibibyte_of_zeros_is_refused_as_a_bomb():
    bomb = _zeros_entry(1024**3)
    assert len(bomb) < 8 * 1024 * 1024
    assert _refused_archive(bomb).code == "archive_limits"


def test_one_bomb_entry_is_refused_when_the_archive_as_a_whole_is_plausible():
    noise = os.urandom(2 * 1024 * 1024)
    bomb = zipfile.ZipFile(io.BytesIO(_zeros_entry(64 * 1024 * 1024))).read("zeros.dcm")
    plan = _plan(_zip(("noise.dcm", noise), ("zeros.dcm", bomb)))
    assert _codes(plan) == {"zeros.dcm": "archive_limits"}
    assert [entry.name for entry in plan.entries] == ["noise.dcm"]


def test_too_many_entries_are_refused_before_the_directory_is_loaded():
    data = _zip(*[(f"{n}.dcm", b"") for n in range(30)])
    assert _refused_archive(data, ArchiveLimits(max_entries=29)).code == "archive_limits"
    assert len(_plan(data, ArchiveLimits(max_entries=30)).entries) == 30


def test_entry_and_total_sizes_are_limited():
    data = _zip(("a.dcm", os.urandom(3000)), ("b.dcm", os.urandom(3000)))
    assert _codes(_plan(data, ArchiveLimits(max_entry_size=2999))) == {
        "a.dcm": "too_large",
        "b.dcm": "too_large",
    }
    refused = _refused_archive(data, ArchiveLimits(max_total_uncompressed=5999))
    assert refused.code == "archive_limits"


def _lie_about_size(data: bytes, name: str, size: int, crc_of: bytes) -> bytes:
    """Rewrite an entry's declared size and CRC in its local header and directory record."""
    raw = bytearray(data)
    encoded = name.encode()
    crc = zlib.crc32(crc_of)
    for signature, crc_at, name_at in ((b"PK\x03\x04", 14, 30), (b"PK\x01\x02", 16, 46)):
        at = raw.find(signature)
        while at >= 0:
            if raw[at + name_at : at + name_at + len(encoded)] == encoded:
                struct.pack_into("<L", raw, at + crc_at, crc)
                struct.pack_into("<L", raw, at + crc_at + 8, size)  # uncompressed size
            at = raw.find(signature, at + 1)
    return bytes(raw)


def test_a_header_that_understates_the_size_lets_out_no_more_than_declared():
    real = bytes(10 * 1024 * 1024)
    data = _lie_about_size(_zip(("small.dcm", real)), "small.dcm", 1000, real[:1000])
    plan = _plan(data)
    assert [(entry.name, entry.size) for entry in plan.entries] == [("small.dcm", 1000)]
    received = b""
    with plan.entries[0].open() as stream, pytest.raises(Rejected) as refused:
        while chunk := stream.read(300):
            received += chunk
    assert refused.value.code == "archive_limits"
    assert len(received) <= 1000


def test_a_header_that_overstates_the_size_is_damaged():
    real = b"abc" * 100
    data = _lie_about_size(_zip(("big.dcm", real)), "big.dcm", 500, real + bytes(200))
    plan = _plan(data)
    with plan.entries[0].open() as stream, pytest.raises(Rejected) as refused:
        stream.read()
    assert refused.value.code == "malformed_archive"


def test_a_checksum_mismatch_is_damaged():
    data = _lie_about_size(_zip(("a.dcm", b"hello")), "a.dcm", 5, b"jello")
    with _plan(data).entries[0].open() as stream, pytest.raises(Rejected) as refused:
        stream.read()
    assert refused.value.code == "malformed_archive"


def test_entries_sharing_compressed_data_are_refused():
    """A directory whose records point at the same data (an 'overlapping' bomb)."""
    data = bytearray(_zip(("a.dcm", b"x" * 5000)))
    directory_at = data.find(b"PK\x01\x02")
    end_at = data.find(b"PK\x05\x06")
    record = bytes(data[directory_at:end_at])
    copies = [record.replace(b"a.dcm", f"{n}.dcm".encode()) for n in "bcd"]
    directory = record + b"".join(copies)
    end = bytearray(data[end_at:])
    struct.pack_into("<HHL", end, 8, 4, 4, len(directory))
    forged = bytes(data[:directory_at]) + directory + bytes(end)
    assert _refused_archive(forged).code == "archive_limits"


def test_the_reading_budget_spans_all_entries_of_a_plan():
    data = _zip(("a.dcm", b"1" * 600), ("b.dcm", b"2" * 600))
    plan = _plan(data, ArchiveLimits(max_total_uncompressed=1200))
    contents = _read_all(plan)
    assert sum(map(len, contents.values())) == 1200
    with plan.entries[0].open() as again, pytest.raises(Rejected) as refused:
        again.read()  # reading a third 600 bytes goes over what the archive may hold
    assert refused.value.code == "archive_limits"
