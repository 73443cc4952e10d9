import json

import pytest
from hypothesis import given

from unaccepted import InvalidMemoryMap, MemoryDescriptor, MemoryMap, MemoryType
from unaccepted.memmap import DESCRIPTOR_SIZE
from unaccepted.testing.strategies import memory_maps


def test_type_15_is_unaccepted():
    assert MemoryType.UNACCEPTED == 15
    assert MemoryDescriptor(15, 0, 1).is_unaccepted


@given(memory_maps())
def test_binary_round_trip_uses_edk2_stride(mm):
    data = mm.to_bytes()
    assert len(data) == DESCRIPTOR_SIZE * len(mm) and DESCRIPTOR_SIZE == 48
    assert MemoryMap.from_bytes(data) == mm
    assert MemoryMap.from_bytes(mm.to_bytes(40), descriptor_size=40) == mm


@given(memory_maps())
def test_json_round_trip(mm):
    assert MemoryMap.from_json(mm.to_json()) == mm


def test_binary_layout_matches_efi_memory_descriptor():
    d = MemoryDescriptor(15, 0x1_0000_0000, 3, virt_start=0x42, attribute=0xF)
    raw = MemoryMap([d]).to_bytes()
    assert raw[0:4] == (15).to_bytes(4, "little")
    assert raw[4:8] == bytes(4)                                   # padding
    assert raw[8:16] == (0x1_0000_0000).to_bytes(8, "little")     # PhysicalStart
    assert raw[16:24] == (0x42).to_bytes(8, "little")             # VirtualStart
    assert raw[24:32] == (3).to_bytes(8, "little")                # NumberOfPages
    assert raw[32:40] == (0xF).to_bytes(8, "little")              # Attribute
    assert raw[40:48] == bytes(8)


@pytest.mark.parametrize("descs, words", [
    ([MemoryDescriptor(7, 4097, 1)], ["descriptor 0", "start", "not 4 KiB aligned"]),
    ([MemoryDescriptor(7, 0, 0)], ["descriptor 0", "pages = 0"]),
    ([MemoryDescriptor(7, 0, 4), MemoryDescriptor(15, 8192, 4)],
     ["descriptor 1", "overlaps descriptor 0"]),
    ([MemoryDescriptor(15, (1 << 64) - 4096, 1)], ["descriptor 0", "past 2^64"]),
])
def test_validation_names_descriptor_and_field(descs, words):
    with pytest.raises(InvalidMemoryMap) as exc:
        MemoryMap(descs).validate()
    for w in words:
        assert w in str(exc.value)


def test_validation_limit():
    mm = MemoryMap([MemoryDescriptor(15, (1 << 52) - 4096, 2)])
    mm.validate()
    with pytest.raises(InvalidMemoryMap, match="past 0x10000000000000"):
        mm.validate(limit=1 << 52)
    # a zero limit is not "no limit" (that is None): it is refused by name
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidMemoryMap, match="limit"):
            mm.validate(limit=bad)
    assert mm.validate(limit=1 << 64) is mm


@pytest.mark.parametrize("field, value", [("type", -1), ("type", 1 << 32), ("start", 1.5),
                                          ("pages", True), ("start", 1 << 64)])
def test_bad_field_types_are_rejected(field, value):
    kw = {"type": 7, "start": 0, "pages": 1, field: value}
    with pytest.raises(InvalidMemoryMap, match=field):
        MemoryMap([MemoryDescriptor(**kw)])


def test_from_bytes_rejects_bad_shapes():
    with pytest.raises(InvalidMemoryMap, match="not a multiple"):
        MemoryMap.from_bytes(bytes(50))
    with pytest.raises(InvalidMemoryMap, match="descriptor_version"):
        MemoryMap.from_bytes(bytes(48), descriptor_version=2)
    with pytest.raises(InvalidMemoryMap, match="descriptor_size"):
        MemoryMap.from_bytes(bytes(48), descriptor_size=36)


def test_from_json_rejects_missing_fields():
    with pytest.raises(InvalidMemoryMap, match="descriptor 0: missing field 'pages'"):
        MemoryMap.from_json(json.dumps([{"type": 7, "start": 0}]))
    with pytest.raises(InvalidMemoryMap, match="not valid JSON"):
        MemoryMap.from_json("[")
