"""Run one fuzz target under atheris (libFuzzer): ``python -m tests.fuzz.run TARGET [args]``.

Arguments after the target go to libFuzzer, e.g. corpus folders (new inputs are written to
the first), ``-max_total_time=600``, ``-seed=1``, ``-runs=N``. A finding is written as
``crash-<sha1>`` (see ``-artifact_prefix``) and the process exits non-zero.
"""

from __future__ import annotations

import sys

import atheris

# Coverage of these modules guides each fuzzer. Instrumenting whole libraries (all of pydicom,
# pypdf, Pillow) costs tens of seconds at start on a busy machine: only the parsing parts are.
INSTRUMENT = {
    "dicom": ["portal.intake", "pydicom.filereader", "pydicom.values", "pydicom.dataelem"],
    "zip": ["portal.intake", "zipfile"],
    "records": ["portal.intake", "PIL.PngImagePlugin", "PIL.JpegImagePlugin", "pypdf._reader"],
    "multipart": ["portal.intake", "python_multipart"],
}


def main(argv: list[str]) -> None:
    target_name = argv[1]
    with atheris.instrument_imports(include=INSTRUMENT[target_name]):
        from tests.fuzz import targets  # noqa: F401 - instrumented on import

    from tests.fuzz.targets import TARGETS

    target = TARGETS[target_name]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
