"""unaccepted.memlog: memory maps read from boot logs, binary maps and JSON.

Every sample below is written by hand in the formats Linux prints
(arch/x86/kernel/e820.c e820__print_table, drivers/firmware/efi/efi.c
efi_md_typeattr_format, arch/x86/platform/efi/efi.c efi_print_memmap and
efi_memmap_entry_valid); expected values are worked out by hand.
"""
import argparse
import dataclasses
import io
import json
import sys

import pytest
from hypothesis import given, settings, strategies as st

from unaccepted import InvalidMemoryMap, MemoryDescriptor, MemoryMap
from unaccepted.memlog import (MapEntry, ParsedMap, ParseResult, add_arguments, parse_memmap,
                               read_memmap, run)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
RUN = 1 << 63
WB_WT_WC_UC = 0xF
COLS = "|   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]"      # with the HP column
COLS_RT_XP = "|RUN|  |  |  |  |  |XP|  |  |  |   |WB|WT|WC|UC]"


def E(start, end, type, attribute=None, invalid=False):
    return MapEntry(start, end, type, attribute, invalid)


def entries(result, i=0):
    return list(result.maps[i].entries)


def cli(capsys, *argv):
    parser = argparse.ArgumentParser(prog="unaccepted memmap")
    add_arguments(parser)
    status = run(parser.parse_args(list(argv)))
    out, err = capsys.readouterr()
    return status, out, err


def write(tmp_path, data, name="log.txt"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


# ---- e820 ----------------------------------------------------------------------
DMESG_E820 = """\
[    0.000000] Linux version 6.8.0-49-generic (buildd@lcy02-amd64-103) #49-Ubuntu SMP
[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-6.8.0-49-generic root=/dev/vda1 ro
[    0.000000] BIOS-provided physical RAM map:
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007ffdbfff] usable
[    0.000000] BIOS-e820: [mem 0x000000007ffdc000-0x000000007fffffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000b0000000-0x00000000bfffffff] reserved
[    0.000000] BIOS-e820: [mem 0x00000000fed1c000-0x00000000fed1ffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000100000000-0x000000027fffffff] usable
[    0.000000] NX (Execute Disable) protection: active
[    0.000000] e820: update [mem 0x00000000-0x00000fff] usable ==> reserved
[    0.000000] e820: remove [mem 0x000a0000-0x000fffff] usable
"""
DMESG_E820_ENTRIES = [
    E(0x0, 0x9fc00, "usable"),
    E(0x9fc00, 0xa0000, "reserved"),
    E(0xf0000, 0x100000, "reserved"),
    E(0x100000, 0x7ffdc000, "usable"),
    E(0x7ffdc000, 0x80000000, "reserved"),
    E(0xb0000000, 0xc0000000, "reserved"),
    E(0xfed1c000, 0xfed20000, "reserved"),
    E(0x100000000, 0x280000000, "usable"),
]


def test_dmesg_e820_with_timestamps():
    r = parse_memmap(DMESG_E820.encode())
    assert r.bad_lines == ()
    assert [m.source for m in r.maps] == ["e820"]
    assert entries(r) == DMESG_E820_ENTRIES
    assert r.maps[0].totals() == {
        "usable": 0x9fc00 + (0x7ffdc000 - 0x100000) + 6 * GiB,
        "unaccepted": 0,
        "highest_usable_end": 0x280000000,
    }
    # whole pages only: the 639 KiB entry loses its last partial page
    assert r.maps[0].ram_ranges() == [(0, 0x9f000, False), (0x100000, 0x7ffdc000, False),
                                      (0x100000000, 0x280000000, False)]


CALLER_ID_E820 = """\
[    0.000000][    T0] BIOS-provided physical RAM map:
[    0.000000][    T0] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff]  639   KB System RAM
[    0.000000][    T0] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff]    1   KB device reserved
[    0.000000][    T0] BIOS-e820: [gap 0x00000000000a0000-0x00000000000effff]  320   KB ...
[    0.000000][    T0] BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff]   64   KB device reserved
[ T1] BIOS-e820: [mem 0x0000000000100000-0x000000007ffdbfff]    1.9 GB kernel usable RAM
[  C0] BIOS-e820: [mem 0x000000007ffdc000-0x000000007fffffff]  144   KB ACPI data
[    T0] BIOS-e820: [mem 0x0000000080000000-0x000000008000ffff] ACPI NVS
[    T0] BIOS-e820: [mem 0x0000000080010000-0x000000008001ffff] unusable
[    T0] BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] persistent (type 12)
[    T0] BIOS-e820: [mem 0x0000000140000000-0x000000017fffffff]    1   GB persistent RAM (type 7)
[    T0] BIOS-e820: [mem 0x0000000180000000-0x00000001bfffffff] soft reserved
[    T0] BIOS-e820: [mem 0x00000001c0000000-0x00000001c0000fff] type 13
[    T0] BIOS-e820: [mem 0x00000001c0001000-0x00000001c0001fff] persistent
"""


def test_caller_ids_and_every_e820_type_name():
    r = parse_memmap(CALLER_ID_E820.encode())
    assert r.bad_lines == ()
    assert entries(r) == [
        E(0x0, 0x9fc00, "usable"),
        E(0x9fc00, 0xa0000, "reserved"),            # the [gap ...] line is no entry
        E(0xf0000, 0x100000, "reserved"),
        E(0x100000, 0x7ffdc000, "usable"),
        E(0x7ffdc000, 0x80000000, "ACPI data"),
        E(0x80000000, 0x80010000, "ACPI NVS"),
        E(0x80010000, 0x80020000, "unusable"),
        E(0x100000000, 0x140000000, "persistent"),
        E(0x140000000, 0x180000000, "persistent"),
        E(0x180000000, 0x1c0000000, "soft reserved"),
        E(0x1c0000000, 0x1c0001000, "type 13"),
        E(0x1c0001000, 0x1c0002000, "persistent"),
    ]
    assert r.maps[0].totals()["usable"] == 0x9fc00 + 0x7fedc000


OLD_E820 = """\
BIOS-provided physical RAM map:
 BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)
 BIOS-e820: 000000000009fc00 - 00000000000a0000 (reserved)
 BIOS-e820: 00000000000e8000 - 0000000000100000 (reserved)
 BIOS-e820: 0000000000100000 - 000000003fff0000 (usable)
 BIOS-e820: 000000003fff0000 - 0000000040000000 (ACPI data)
 BIOS-e820: 0000000040000000 - 0000000040001000 (ACPI NVS)
 BIOS-e820: 00000000fffbc000 - 0000000100000000 (reserved)
 BIOS-e820: 0000000100000000 - 0000000100100000 type 9
"""


def test_old_kernels_exclusive_e820_end():
    r = parse_memmap(OLD_E820.encode())
    assert entries(r) == [
        E(0x0, 0x9fc00, "usable"),
        E(0x9fc00, 0xa0000, "reserved"),
        E(0xe8000, 0x100000, "reserved"),
        E(0x100000, 0x3fff0000, "usable"),
        E(0x3fff0000, 0x40000000, "ACPI data"),
        E(0x40000000, 0x40001000, "ACPI NVS"),
        E(0xfffbc000, 0x100000000, "reserved"),
        E(0x100000000, 0x100100000, "type 9"),
    ]
    assert r.maps[0].totals() == {"usable": 0x9fc00 + 0x3fef0000, "unaccepted": 0,
                                  "highest_usable_end": 0x3fff0000}


def test_e820_unaccepted_type_counts_as_unaccepted():
    log = ("BIOS-e820: [mem 0x0000000000000000-0x000000003fffffff] usable\n"
           "BIOS-e820: [mem 0x0000000040000000-0x00000000bfffffff] unaccepted\n")
    m = parse_memmap(log.encode()).maps[0]
    assert m.entries[1] == E(0x40000000, 0xc0000000, "unaccepted")
    assert m.totals() == {"usable": GiB, "unaccepted": 2 * GiB, "highest_usable_end": 3 * GiB}
    assert m.ram_ranges() == [(0, GiB, False), (GiB, 3 * GiB, True)]


# ---- EFI -----------------------------------------------------------------------
EFI_NEW = f"""\
[    0.000000] efi: EFI v2.7 by EDK II
[    0.000000] efi: SMBIOS=0x7f8bc000 ACPI=0x7fb7e000 ACPI 2.0=0x7fb7e014 MEMATTR=0x7e9b5018
[    0.000000] efi: mem00: [Boot Code   {COLS} range=[0x0000000000000000-0x0000000000000fff] (0MB)
[    0.000000] efi: mem01: [Conventional{COLS} range=[0x0000000000001000-0x000000000009ffff] (0MB)
[    0.000000] efi: mem02: [Loader Code {COLS} range=[0x0000000000100000-0x00000000001fffff] (1MB)
[    0.000000] efi: mem03: [Loader Data {COLS} range=[0x0000000000200000-0x00000000003fffff] (2MB)
[    0.000000] efi: mem04: [Boot Data   {COLS} range=[0x0000000000400000-0x00000000007fffff] (4MB)
[    0.000000] efi: mem05: [Runtime Code{COLS_RT_XP} range=[0x0000000000800000-0x0000000000807fff] (0MB)
[    0.000000] efi: mem06: [ACPI Reclaim{COLS} range=[0x0000000000808000-0x000000000080bfff] (0MB)
[    0.000000] efi: mem07: [ACPI Mem NVS{COLS} range=[0x000000000080c000-0x000000000080ffff] (0MB)
[    0.000000] efi: mem08: [Conventional|   |  |  |SP|  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000810000-0x0000000000ffffff] (7MB)
[    0.000000] efi: mem09: [Unaccepted  {COLS} range=[0x0000000001000000-0x000000007fffffff] (2032MB)
[    0.000000] efi: mem10: [Reserved    |   |  |  |  |  |  |  |  |  |  |   |  |  |  |UC] range=[0x00000000b0000000-0x00000000bfffffff] (256MB)
[    0.000000] efi: mem11: [MMIO        |RUN|  |  |  |  |  |  |  |  |  |   |  |  |  |UC] range=[0x00000000ffc00000-0x00000000ffffffff] (4MB)
[    0.000000] efi: mem12: [Persistent  |   |  |  |  |  |NV|  |  |  |  |   |WB|  |  |  ] range=[0x0000000080000000-0x000000008fffffff] (256MB)
[    0.000000] efi: mem13: [Unusable    |   |HP|MR|CC|  |  |  |RP|WP|RO|UCE|  |  |  |  ] range=[0x0000000090000000-0x0000000090000fff] (0MB)
[    0.000000] efi: mem14: [PAL Code    |attr=0x0000000000000020] range=[0x0000000090001000-0x0000000090001fff] (0MB)
[    0.000000] efi: mem15: [MMIO Port   {COLS} range=[0x0000000090002000-0x0000000090002fff] (0MB)
[    0.000000] efi: mem16: [Runtime Data{COLS_RT_XP} range=[0x0000000090003000-0x0000000090003fff] (0MB)
[    0.000000] efi: mem17: [type=16     {COLS} range=[0x0000000090004000-0x0000000090004fff] (0MB)
[    0.000000] efi: mem18: [type=2147483648|   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC range=[0x0000000090005000-0x0000000090005fff] (0MB)
[    0.000000] efi: memattr: Processing EFI Memory Attributes table:
[    0.000000] efi: memattr:  0x000000800000-0x000000807fff [Runtime Code|RUN|  |  |  |  |  |  |  |RO|  |   |  |  |  |  ]
"""
EFI_NEW_ENTRIES = [
    E(0x0, 0x1000, 3, WB_WT_WC_UC),
    E(0x1000, 0xa0000, 7, WB_WT_WC_UC),
    E(0x100000, 0x200000, 1, WB_WT_WC_UC),
    E(0x200000, 0x400000, 2, WB_WT_WC_UC),
    E(0x400000, 0x800000, 4, WB_WT_WC_UC),
    E(0x800000, 0x808000, 5, RUN | 0x4000 | WB_WT_WC_UC),
    E(0x808000, 0x80c000, 9, WB_WT_WC_UC),
    E(0x80c000, 0x810000, 10, WB_WT_WC_UC),
    E(0x810000, 0x1000000, 7, 0x40000 | WB_WT_WC_UC),               # SP: soft reserved
    E(0x1000000, 0x80000000, 15, WB_WT_WC_UC),
    E(0xb0000000, 0xc0000000, 0, 0x1),
    E(0xffc00000, 0x100000000, 11, RUN | 0x1),
    E(0x80000000, 0x90000000, 14, 0x8000 | 0x8),
    E(0x90000000, 0x90001000, 8, 0x100000 | 0x10000 | 0x80000 | 0x2000 | 0x1000 | 0x20000
      | 0x10),
    E(0x90001000, 0x90002000, 13, 0x20),
    E(0x90002000, 0x90003000, 12, WB_WT_WC_UC),
    E(0x90003000, 0x90004000, 6, RUN | 0x4000 | WB_WT_WC_UC),
    E(0x90004000, 0x90005000, 16, WB_WT_WC_UC),
    # a 10-digit type fills the kernel's 64-byte buffer: the "]" is cut off
    E(0x90005000, 0x90006000, 2147483648, WB_WT_WC_UC),
]


def test_dmesg_efi_every_type_name_and_flag():
    r = parse_memmap(EFI_NEW.encode())
    assert r.bad_lines == ()             # "efi: memattr:" lines are another table
    assert [m.source for m in r.maps] == ["efi"]
    assert entries(r) == EFI_NEW_ENTRIES
    usable = 0x1000 + 0x9f000 + 0x100000 + 0x200000 + 0x400000
    assert r.maps[0].totals() == {"usable": usable, "unaccepted": 0x7f000000,
                                  "highest_usable_end": 0x80000000}
    assert r.maps[0].ram_ranges() == [(0x0, 0xa0000, False), (0x100000, 0x800000, False),
                                      (0x1000000, 0x80000000, True)]


OLD_EFI = """\
<6>[    0.000000] efi: mem00: type=3, attr=0xf, range=[0x0000000000000000-0x0000000000001000) (0MB)
<6>[    0.000000] efi: mem01: type=7, attr=0xf, range=[0x0000000000001000-0x00000000000a0000) (0MB)
<6>[    0.000000] efi: mem02: type=0, attr=0x0, range=[0x00000000000a0000-0x0000000000100000) (0MB)
<6>[    0.000000] efi: mem03: type=2, attr=0xf, range=[0x0000000000100000-0x0000000001000000) (15MB)
<6>[    0.000000] efi: mem04: type=5, attr=0x800000000000000f, range=[0x00000000bd000000-0x00000000bd100000) (1MB)
<6>[    0.000000] efi: mem05: type=15, attr=0xf, range=[0x0000000100000000-0x0000000140000000) (1024MB)
"""


def test_old_kernels_type_equals_efi_lines_with_exclusive_end():
    r = parse_memmap(OLD_EFI.encode())
    assert entries(r) == [
        E(0x0, 0x1000, 3, 0xf),
        E(0x1000, 0xa0000, 7, 0xf),
        E(0xa0000, 0x100000, 0, 0x0),
        E(0x100000, 0x1000000, 2, 0xf),
        E(0xbd000000, 0xbd100000, 5, 0x800000000000000f),
        E(0x100000000, 0x140000000, 15, 0xf),
    ]
    assert r.maps[0].totals() == {"usable": 0x1000 + 0x9f000 + 0xf00000, "unaccepted": GiB,
                                  "highest_usable_end": 0x140000000}


def test_long_type_names_of_2020_and_older_and_the_range_close_deciding_the_end():
    log = ("efi: mem00: [Conventional Memory|   |  |  |  |  |   |WB|WT|WC|UC] "
           "range=[0x0000000000000000-0x00000000000a0000) (0MB)\n"
           "efi: mem01: [ACPI Memory NVS    |   |  |  |  |  |   |WB|WT|WC|UC] "
           "range=[0x00000000000a0000-0x00000000000a0fff] (0MB)\n"
           "efi: mem02: [Memory Mapped I/O  |RUN|  |  |  |  |   |  |  |  |UC] "
           "range=[0x00000000000a1000-0x00000000000a1fff] (0MB)\n"
           "efi: mem03: [type=15            |   |  |  |  |  |   |WB|WT|WC|UC] "
           "range=[0x00000000000a2000-0x00000000000a2fff] (0MB)\n")
    assert entries(parse_memmap(log.encode())) == [
        E(0x0, 0xa0000, 7, 0xf), E(0xa0000, 0xa1000, 10, 0xf), E(0xa1000, 0xa2000, 11, RUN | 1),
        E(0xa2000, 0xa3000, 15, 0xf)]


JOURNALD = f"""\
Nov 29 12:00:01 tdx-guest kernel: Linux version 6.11.0 (build@host) (gcc 13.2.0) #1 SMP
Nov 29 12:00:01 tdx-guest kernel: efi: EFI v2.7 by EDK II
Nov 29 12:00:01 tdx-guest kernel: efi: mem00: [Conventional{COLS} range=[0x0000000000000000-0x000000000009ffff] (0MB)
Nov 29 12:00:01 tdx-guest kernel: efi: mem01: [Boot Data   {COLS} range=[0x0000000000100000-0x00000000003fffff] (3MB)
Nov 29 12:00:01 tdx-guest kernel: efi: mem02: [Unaccepted  {COLS} range=[0x0000000000400000-0x000000007fffffff] (2044MB)
Nov 29 12:00:01 tdx-guest kernel: efi: mem03: [Unaccepted  {COLS} range=[0x0000000100000000-0x000000047fffffff] (14336MB)
Nov 29 12:00:01 tdx-guest systemd[1]: Started Journal Service.
"""


def test_journald_prefix():
    r = parse_memmap(JOURNALD.encode())
    assert entries(r) == [
        E(0x0, 0xa0000, 7, 0xf), E(0x100000, 0x400000, 4, 0xf),
        E(0x400000, 0x80000000, 15, 0xf), E(0x100000000, 0x480000000, 15, 0xf)]
    assert r.maps[0].totals() == {"usable": 0xa0000 + 0x300000,
                                  "unaccepted": 0x7fc00000 + 14 * GiB,
                                  "highest_usable_end": 0x480000000}


MAIL = (
    "On Fri, Nov 29, 2024 at 12:00 Someone wrote:\r\n"
    "> Here is the EFI map from the failing guest:\r\n"
    ">\r\n"
    "> [    0.000000] efi: mem00: [Conventional|   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC]\r\n"
    "> range=[0x0000000000000000-0x000000000009ffff] (0MB)\r\n"
    "> [    0.000000] efi: mem01: [Loader Data |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000100000-0x00000000001fffff]\r\n"
    "> (1MB)\r\n"
    ">> [    0.000000] efi: mem02: [Boot Data   |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x00000000002000\r\n"
    ">> 00-0x00000000003fffff] (2MB)\r\n"
    "> > [    0.000000] efi: mem03: [Runtime Da\r\n"
    "> > ta|RUN|  |  |  |  |  |XP|  |  |  |   |WB|WT|WC|UC] range=[0x0000000000400000-\r\n"
    "> > 0x0000000000403fff] (0MB)\r\n"
    "> [    0.000000] efi: mem04: [Unaccepted  |   |  |  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000100000000-0x000000017fffffff]\r\n"
    "> (2048MB)\r\n"
    "> [    0.000000] efi: mem05: [Reserved    |   |  |  |  |  |  |  |  |  |  |   |  |  |  |  ] range=[0x00000000feffc000-0x00000000feffffff] (0MB)\r\n"
    ">\r\n"
    "> Any idea?\r\n"
)


def test_mail_quoted_wrapped_efi_lines_with_crlf():
    r = parse_memmap(MAIL.encode())
    assert r.bad_lines == ()
    assert entries(r) == [
        E(0x0, 0xa0000, 7, 0xf),
        E(0x100000, 0x200000, 2, 0xf),
        E(0x200000, 0x400000, 4, 0xf),
        E(0x400000, 0x404000, 6, RUN | 0x4000 | 0xf),
        E(0x100000000, 0x180000000, 15, 0xf),
        E(0xfeffc000, 0xff000000, 0, 0),
    ]


def test_mail_wrapped_e820_line_without_its_type():
    log = ("> [    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff]\n"
           "> usable\n"
           "> [    0.000000] BIOS-e820: [mem 0x000000007ffdc000-0x000000007fffffff] ACPI\n"
           "> NVS\n"
           "> [    0.000000] BIOS-e820: [mem 0x0000000080000000-0x0000000080000fff] type 1\n"
           "> 3\n"
           "> [    0.000000] BIOS-e820: [mem 0x0000000100000000-0x00000001ffffffff] usable\n"
           "> thanks\n")
    r = parse_memmap(log.encode())
    assert r.bad_lines == ()
    assert entries(r) == [E(0x0, 0x9fc00, "usable"), E(0x7ffdc000, 0x80000000, "ACPI NVS"),
                          E(0x80000000, 0x80001000, "type 13"),
                          E(0x100000000, 0x200000000, "usable")]


INVALID = f"""\
[    0.000000] efi: [Firmware Bug]: Invalid EFI memory map entries:
[    0.000000] efi: mem02: [Reserved    |   |  |  |  |  |  |  |  |  |  |   |  |  |  |  ] range=[0x00000000000a0000-0x0000000000000000] (invalid)
[    0.000000] efi: mem04: [Conventional{COLS} range=[0xfffffffffff00000-0x10000000000000fff] (invalid)
[    0.000000] efi: mem00: [Boot Code   {COLS} range=[0x0000000000000000-0x0000000000000fff] (0MB)
[    0.000000] efi: mem01: [Conventional{COLS} range=[0x0000000000001000-0x000000000009ffff] (0MB)
[    0.000000] efi: mem02: [Loader Data {COLS} range=[0x0000000000100000-0x00000000001fffff] (1MB)
"""


def test_descriptors_the_kernel_flags_invalid():
    r = parse_memmap(INVALID.encode())
    # the dropped descriptors go back to their index in the firmware's map
    assert entries(r) == [
        E(0x0, 0x1000, 3, 0xf),
        E(0x1000, 0xa0000, 7, 0xf),
        E(0xa0000, 0xa0000, 0, 0, invalid=True),          # num_pages == 0
        E(0x100000, 0x200000, 2, 0xf),
        E(0xfffffffffff00000, 0x10000000000001000, 7, 0xf, invalid=True),   # wraps 2^64
    ]
    assert r.maps[0].totals() == {"usable": 0x1000 + 0x9f000 + 0x100000, "unaccepted": 0,
                                  "highest_usable_end": 0x200000}
    assert r.maps[0].ram_ranges() == [(0, 0xa0000, False), (0x100000, 0x200000, False)]


# ---- several tables --------------------------------------------------------------
BOTH = DMESG_E820 + EFI_NEW


def test_log_with_e820_and_efi_gives_both_maps():
    r = parse_memmap(BOTH.encode())
    assert [m.source for m in r.maps] == ["e820", "efi"]
    assert entries(r, 0) == DMESG_E820_ENTRIES and entries(r, 1) == EFI_NEW_ENTRIES
    obj = r.to_json_obj()
    assert list(obj) == ["maps"] and [m["source"] for m in obj["maps"]] == ["e820", "efi"]


def test_repeated_tables_keep_the_first_of_each_kind():
    kexec = (DMESG_E820.replace("0x000000027fffffff", "0x00000001ffffffff")
             + EFI_NEW.replace("mem09: [Unaccepted  ", "mem09: [Conventional"))
    r = parse_memmap((BOTH + "[   12.000000] kexec_core: Starting new kernel\n" + kexec).encode())
    assert entries(r, 0) == DMESG_E820_ENTRIES and entries(r, 1) == EFI_NEW_ENTRIES
    # the same without header lines: the addresses / indexes going back split tables
    bare = "\n".join(l for l in BOTH.splitlines() if "BIOS-e820" in l or "efi: mem" in l)
    r = parse_memmap((bare + "\n" + bare.replace("usable", "reserved") + "\n").encode())
    assert entries(r, 0) == DMESG_E820_ENTRIES and entries(r, 1) == EFI_NEW_ENTRIES


def test_overlapping_entries_are_kept_as_printed():
    log = ("BIOS-e820: [mem 0x0000000000000000-0x000000000fffffff] usable\n"
           "BIOS-e820: [mem 0x0000000008000000-0x0000000017ffffff] usable\n"
           "BIOS-e820: [mem 0x0000000008000000-0x0000000008000fff] reserved\n")
    m = parse_memmap(log.encode()).maps[0]
    assert list(m.entries) == [E(0, 0x10000000, "usable"), E(0x8000000, 0x18000000, "usable"),
                               E(0x8000000, 0x8001000, "reserved")]
    assert m.totals()["usable"] == 0x18000000                  # overlap counted once


# ---- binary and JSON ---------------------------------------------------------------
def sample_memory_map():
    return MemoryMap([
        MemoryDescriptor(3, 0x0, 1, attribute=0xf),
        MemoryDescriptor(7, 0x1000, 0x9f, attribute=0xf),
        MemoryDescriptor(15, 0x100000000, 0x40000, attribute=0xf),
        MemoryDescriptor(5, 0x800000, 8, virt_start=0xfffffffe00800000, attribute=RUN | 0xf),
        MemoryDescriptor(0x80000001, 0x900000, 1),
    ])


SAMPLE_ENTRIES = [E(0x0, 0x1000, 3, 0xf), E(0x1000, 0xa0000, 7, 0xf),
                  E(0x100000000, 0x140000000, 15, 0xf), E(0x800000, 0x808000, 5, RUN | 0xf),
                  E(0x900000, 0x901000, 0x80000001, 0)]


@pytest.mark.parametrize("stride", [48, 40])
def test_binary_map(stride):
    r = parse_memmap(sample_memory_map().to_bytes(stride))
    assert [m.source for m in r.maps] == ["binary"] and entries(r) == SAMPLE_ENTRIES
    assert r.maps[0].totals() == {"usable": 0xa0000, "unaccepted": GiB,
                                  "highest_usable_end": 0x140000000}


def test_binary_map_with_an_empty_descriptor_marks_it_invalid():
    mm = MemoryMap([MemoryDescriptor(7, 0x0, 16), MemoryDescriptor(7, 0x10000, 0)])
    assert entries(parse_memmap(mm.to_bytes())) == [E(0, 0x10000, 7, 0),
                                                    E(0x10000, 0x10000, 7, 0, invalid=True)]


def test_memorymap_json():
    r = parse_memmap(sample_memory_map().to_json().encode())
    assert r.maps[0].source == "json" and entries(r) == SAMPLE_ENTRIES


@pytest.mark.parametrize("data", [
    DMESG_E820, CALLER_ID_E820, OLD_E820, EFI_NEW, OLD_EFI, MAIL, INVALID, BOTH, JOURNALD,
    sample_memory_map().to_bytes(), sample_memory_map().to_json()])
def test_json_output_reads_back_as_the_same_maps(data, tmp_path, capsys):
    data = data if isinstance(data, bytes) else data.encode()
    status, out, err = cli(capsys, write(tmp_path, data), "--json")
    assert status == 0 and err == ""
    again = parse_memmap(out.encode())
    assert again.maps == parse_memmap(data).maps
    assert again.to_json_obj() == json.loads(out)
    status, out2, _ = cli(capsys, write(tmp_path, out, "out.json"), "--json")
    assert status == 0 and out2 == out


def test_json_output_fields(tmp_path, capsys):
    status, out, _ = cli(capsys, write(tmp_path, OLD_E820), "--json")
    obj = json.loads(out)
    assert list(obj) == ["source", "entries", "totals"] and obj["source"] == "e820"
    assert obj["entries"][0] == {"start": 0, "end": 0x9fc00, "type": "usable",
                                 "attribute": None, "invalid": False}
    assert obj["totals"] == {"usable": 0x9fc00 + 0x3fef0000, "unaccepted": 0,
                             "highest_usable_end": 0x3fff0000}


@pytest.mark.parametrize("text, message", [
    ('{"source": "e820", "entries": [{"start": 0, "end": 4096, "type": 7, '
     '"attribute": null}]}', "e820 type name"),
    ('{"source": "efi", "entries": [{"start": 8192, "end": 4096, "type": 7}]}', "end"),
    ('{"source": "efi", "entries": [{"start": 0, "end": 4096, "type": true}]}', "type"),
    ('{"source": "dmesg", "entries": []}', "source"),
    ('{"maps": []}', "maps"),
    ('[{"type": 7, "start": 0}]', "pages"),
    ('[{"type": 7, "start": 0, "pages": ', "not valid JSON"),
    ('[1]', "descriptor 0: must be an object"),
    ('["x"]', "descriptor 0: must be an object"),
])
def test_bad_json_raises_invalid_memory_map(text, message):
    with pytest.raises(InvalidMemoryMap, match=message):
        parse_memmap(text.encode())


# ---- bad lines, the command ---------------------------------------------------------
GARBAGE = f"""\
this is not a log line
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] BIOS-e820: [mem 0x00000000000ZZ000-0x00000000000fffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] something odd
[    0.000000] efi: mem00: [Conventional{COLS} range=[0x0000000000000000-0x000000000009ffff] (0MB)
[    0.000000] efi: mem01: [Bogus Type  {COLS} range=[0x0000000000100000-0x00000000001fffff] (1MB)
[    0.000000] efi: mem02: [Conventional|   |MT|  |  |  |  |  |  |  |  |   |WB|WT|WC|UC] range=[0x0000000000200000-0x00000000002fffff] (1MB)
[    0.000000] efi: mem03: [Conventional{COLS} range=[0x0000000000400000-0x00000000003fefff] (0MB)
\x1b[32mcolour\x1b[0m and odd characters: \xff\xfe
""".encode() + b"and bytes that are not UTF-8: \xff\xfe\n"


def test_garbage_lines_are_skipped_and_reported():
    r = parse_memmap(GARBAGE)
    assert entries(r, 0) == [E(0, 0x9fc00, "usable")]
    assert entries(r, 1) == [E(0, 0xa0000, 7, 0xf)]
    assert [n for n, _ in r.bad_lines] == [3, 4, 6, 7, 8]
    reasons = dict(r.bad_lines)
    assert "something odd" in reasons[4] and "Bogus Type" in reasons[6] and "MT" in reasons[7]


def test_strict_reports_bad_lines_and_fails(tmp_path, capsys):
    path = write(tmp_path, GARBAGE)
    status, out, err = cli(capsys, path, "--json")
    assert status == 0 and err == "" and len(json.loads(out)["maps"]) == 2
    status, out, err = cli(capsys, path, "--strict")
    assert status == 1 and "usable" in out
    assert [l.split(": ")[1] for l in err.splitlines()] == [f"{path}:{n}" for n in (3, 4, 6, 7, 8)]


def test_human_table(tmp_path, capsys):
    status, out, err = cli(capsys, write(tmp_path, INVALID))
    assert status == 0 and err == ""
    assert "efi memory map, 5 entries" in out
    assert "0x0000000000001000  0x00000000000a0000     636 KiB  7 Conventional" in out
    assert out.count("(invalid)") == 2
    assert "highest_usable_end: 0x200000" in out
    status, out, _ = cli(capsys, write(tmp_path, BOTH))
    assert "e820 memory map, 8 entries" in out and "efi memory map, 19 entries" in out


def test_missing_file_exits_2_with_one_line(tmp_path, capsys):
    missing = str(tmp_path / "nope.log")
    status, out, err = cli(capsys, missing)
    assert status == 2 and out == "" and err.count("\n") == 1 and missing in err
    assert "Traceback" not in err
    status, out, err = cli(capsys, str(tmp_path))              # a directory
    assert status == 2 and err.count("\n") == 1 and str(tmp_path) in err
    with pytest.raises(OSError):
        read_memmap(missing)


@pytest.mark.parametrize("data", [b"", b"just a log\nwithout maps\n", b"\x00\x01\x02",
                                  b"BIOS-e820: [mem 0xzz] usable\n"])
def test_no_map_exits_1_with_one_line(data, tmp_path, capsys):
    path = write(tmp_path, data)
    status, out, err = cli(capsys, path)
    assert status == 1 and out == "" and err.count("\n") == 1 and path in err
    with pytest.raises(InvalidMemoryMap, match="no memory map found"):
        parse_memmap(data)


def test_dash_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(OLD_EFI.encode())))
    status, out, err = cli(capsys, "-", "--json")
    assert status == 0 and err == "" and json.loads(out)["source"] == "efi"


def test_api_types():
    r = parse_memmap(OLD_EFI.encode())
    assert isinstance(r, ParseResult) and isinstance(r.maps[0], ParsedMap)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.maps[0].entries[0].start = 1
    single = ParseResult((ParsedMap("efi", (E(0, 4096, 7, 0),)),))
    assert single.to_json_obj() == {"source": "efi", "entries": [
        {"start": 0, "end": 4096, "type": 7, "attribute": 0, "invalid": False}],
        "totals": {"usable": 4096, "unaccepted": 0, "highest_usable_end": 4096}}


def test_ram_ranges_merge_align_and_let_unaccepted_win():
    m = ParsedMap("efi", (
        E(0x0, 0x1800, 7, 0xf),                 # ends mid-page
        E(0x1800, 0x3000, 4, 0xf),              # touches: merged with the one before
        E(0x2000, 0x6000, 15, 0xf),             # overlaps usable memory: unaccepted wins
        E(0x6000, 0x8000, 2, 0xf),
        E(0x9000, 0xa000, 0, 0),                # not RAM
        E(0x10800, 0x13000, 15, 0xf),           # unaligned start: shrunk to whole pages
    ))
    assert m.ram_ranges() == [(0x0, 0x2000, False), (0x2000, 0x6000, True),
                              (0x6000, 0x8000, False), (0x11000, 0x13000, True)]


# ---- property: random EFI maps rendered as logs come back the same ---------------------
FLAG_BITS = [("RUN", 1 << 63), ("HP", 1 << 20), ("MR", 1 << 16), ("CC", 1 << 19),
             ("SP", 1 << 18), ("NV", 1 << 15), ("XP", 1 << 14), ("RP", 1 << 13),
             ("WP", 1 << 12), ("RO", 1 << 17), ("UCE", 1 << 4), ("WB", 1 << 3),
             ("WT", 1 << 2), ("WC", 1 << 1), ("UC", 1 << 0)]
NAMES = ["Reserved", "Loader Code", "Loader Data", "Boot Code", "Boot Data", "Runtime Code",
         "Runtime Data", "Conventional", "Unusable", "ACPI Reclaim", "ACPI Mem NVS", "MMIO",
         "MMIO Port", "PAL Code", "Persistent", "Unaccepted"]


def render_typeattr(etype, attr):
    """efi_md_typeattr_format() with the HP column, into its 64-byte buffer."""
    head = f"[type={etype}" if etype >= len(NAMES) else f"[{NAMES[etype]:<12}"
    known = sum(bit for _, bit in FLAG_BITS)
    if attr & ~known:
        tail = f"|attr=0x{attr:016x}]"
    else:
        tail = "".join(f"|{(name if attr & bit else ''):>{3 if len(name) == 3 else 2}}"
                       for name, bit in FLAG_BITS) + "]"
    return (head + tail)[:63]


def render_line(i, e, style):
    size = e.end - e.start
    if style == "old":
        return (f"efi: mem{i:02d}: type={e.type}, attr=0x{e.attribute:x}, "
                f"range=[0x{e.start:016x}-0x{e.end:016x}) ({size >> 20}MB)")
    close = f"0x{e.end - 1:016x}]" if style == "new" else f"0x{e.end:016x})"
    return (f"efi: mem{i:02d}: {render_typeattr(e.type, e.attribute)} "
            f"range=[0x{e.start:016x}-{close} ({size >> 20}MB)")


PREFIXES = ["", "[    0.000000] ", "[    0.000000][    T0] ", "<6>[    0.000000] ", "<6>",
            "Nov 29 12:00:01 host kernel: ", "[    0.000000] [  C0] "]
QUOTES = ["", "> ", ">> ", "> > "]
NOISE = ["[    0.000000] efi: EFI v2.7 by EDK II", "NX (Execute Disable) protection: active",
         "efi: memattr: Processing EFI Memory Attributes table:", "", "random words here"]


@st.composite
def efi_logs(draw):
    n = draw(st.integers(1, 8))
    attrs = st.one_of(st.sets(st.sampled_from([b for _, b in FLAG_BITS])).map(sum),
                      st.integers(0, (1 << 64) - 1))
    types = st.one_of(st.integers(0, 15), st.integers(16, (1 << 32) - 1))
    style = draw(st.sampled_from(["new", "new", "bracket-exclusive", "old"]))
    want, addr = [], 0
    for _ in range(n):
        addr += draw(st.integers(0, 1 << 20)) * 4096
        pages = draw(st.integers(1, 1 << 24))
        want.append(E(addr, addr + pages * 4096, draw(types), draw(attrs)))
        addr += pages * 4096
    prefix, quote = draw(st.sampled_from(PREFIXES)), draw(st.sampled_from(QUOTES))
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines = []
    for i, e in enumerate(want):
        if draw(st.booleans()):
            lines.append(quote + draw(st.sampled_from(NOISE)))
        text = render_line(i, e, style)
        pieces, cut_from = [], len(f"efi: mem{i:02d}:")
        for _ in range(draw(st.integers(0, 2))):          # wraps, never inside the marker
            if cut_from >= len(text) - 1:
                break
            cut = draw(st.integers(cut_from, len(text) - 1))
            head, rest = text[:cut], text[cut:]
            if rest.startswith(" ") and draw(st.booleans()):
                rest = rest[1:]                           # the client ate the space
            if not (head.strip() and rest.strip()):      # no blank continuation lines
                continue
            pieces.append(head)
            text, cut_from = rest, 1
        pieces.append(text)
        lines.append(quote + prefix + pieces[0])
        lines.extend(quote + p for p in pieces[1:])
    return eol.join(lines) + eol, want


@settings(max_examples=50, deadline=None)
@given(efi_logs())
def test_property_rendered_efi_logs_parse_back(case):
    log, want = case
    r = parse_memmap(log.encode())
    assert r.bad_lines == ()
    assert [m.source for m in r.maps] == ["efi"]
    assert list(r.maps[0].entries) == want
