import re
from pathlib import Path

import pytest

import unaccepted
from unaccepted.errors import STATUS_EXCEPTIONS, UnacceptedError, error_for
from unaccepted._core import ffi, lib

HEADER = Path(__file__).resolve().parents[2] / "csrc" / "include" / "unaccepted.h"


def declared_statuses():
    text = HEADER.read_text()
    enum = text[text.index("typedef enum ua_status"):text.index("} ua_status;")]
    return {name: int(v) for name, v in re.findall(r"(UA_E_\w+)\s*=\s*(\d+)", enum)}


def test_every_status_maps_to_an_exception_with_a_message():
    statuses = declared_statuses()
    assert statuses, "no status codes found in the header"
    for name, value in statuses.items():
        assert value in STATUS_EXCEPTIONS, name
        assert getattr(lib, name) == value
        text = ffi.string(lib.ua_strerror(value)).decode()
        assert text and text != "unknown status", name
        exc = error_for(value, "context")
        assert isinstance(exc, UnacceptedError) and exc.status == value
        assert str(exc) == f"context: {text}"


def test_input_errors_are_value_errors():
    for cls in (unaccepted.InvalidMemoryMap, unaccepted.InvalidOp, unaccepted.InvalidTable,
                unaccepted.UnknownTableVersion, unaccepted.InvalidUnitSize):
        assert issubclass(cls, ValueError) and issubclass(cls, UnacceptedError)
    for cls in (unaccepted.GuestPanic, unaccepted.GuestTerminated,
                unaccepted.ArchitecturalFault):
        assert issubclass(cls, unaccepted.GuestDied)


def test_version_matches():
    assert unaccepted.__version__ == "0.2.0"
    assert lib.ua_version() == (0 << 16) | (2 << 8) | 0


def test_wrong_types_are_typed_errors_naming_the_argument():
    # issue 9: these raised AttributeError from deep inside
    import pytest
    from unaccepted import Cost, InvalidArgument, InvalidMemoryMap, stub_build_table
    with pytest.raises(InvalidArgument, match="profile"):
        Cost(5)
    with pytest.raises(InvalidMemoryMap, match="memory_map must be a MemoryMap, got list"):
        stub_build_table([1, 2])
