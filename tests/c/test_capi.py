"""The C library for simulators written in C/C++: built with make from the
same sources as the extension, its unit tests and example program run."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                                reason="needs make and a C compiler")


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("cbuild")
    subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), f"BUILD={out}", "all", "example"],
                   check=True, capture_output=True, text=True)
    return out


def test_library_artifacts(build):
    assert (build / "libunaccepted.a").stat().st_size > 0
    assert (build / "libunaccepted.so").stat().st_size > 0
    pc = (build / "unaccepted.pc").read_text()
    assert "Version: 0.2.0" in pc and "-lunaccepted" in pc
    # only ua_* symbols are exported from the shared library
    nm = shutil.which("nm")
    if nm:
        syms = subprocess.run([nm, "-D", "--defined-only", str(build / "libunaccepted.so")],
                              capture_output=True, text=True, check=True).stdout.split("\n")
        names = [line.split()[-1] for line in syms if " T " in line]
        assert names and all(n.startswith("ua_") for n in names), names


def test_c_unit_tests(build):
    proc = subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), f"BUILD={build}", "check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failed" in proc.stdout


def test_example_program_links_and_runs(build):
    proc = subprocess.run([str(build / "examples" / "accept_demo")], capture_output=True,
                          text=True, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0] == "libunaccepted 0.2.0"
    # 1024 contiguous 4 MiB blocks (2048 units) plus the last block's guard
    # unit, out of 3072 units of 2 MiB
    assert "accept calls: 1024" in lines[2]
    assert lines[3] == "units still unaccepted: 1023"


def _check_guest_demo(stdout):
    lines = stdout.splitlines()
    assert lines[0] == "libunaccepted 0.2.0"
    # 1 GiB from 5 GiB: 512 units plus the guard unit, one run, on both vendors
    for vendor in ("SNP", "TDX"):
        first = next(l for l in lines if l.startswith(f"{vendor}: accept_memory"))
        assert "success, 513 units in 1 calls" in first
    # 4 KiB backing: SNP falls back to 512 PVALIDATEs per 2 MiB entry, TDX AUGs
    # every 4 KiB page after an EPT-violation exit (one exit per page)
    assert "SNP: 4K accepts 262656, 2M accepts 513" in stdout
    assert "TDX: 4K accepts 262656, 2M accepts 513, exits 262656" in stdout
    assert "SNP: touch of an accepted page: served" in stdout
    assert "TDX: touch of an accepted page: served; of an unaccepted one: terminated" in stdout
    assert "never-aug host: the guest hangs" in stdout and "after 1000 unserved exits" in stdout


def test_guest_demo_drives_both_vendors(build):
    proc = subprocess.run([str(build / "examples" / "guest_demo")], capture_output=True,
                          text=True, check=True)
    _check_guest_demo(proc.stdout)


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="needs pkg-config")
def test_guest_demo_builds_against_the_installed_library(tmp_path):
    prefix = tmp_path / "prefix"
    subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), f"BUILD={tmp_path / 'b'}",
                    f"PREFIX={prefix}", "install"], check=True, capture_output=True, text=True)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "--static", "unaccepted"],
                           env=env, check=True, capture_output=True, text=True).stdout.split()
    assert f"-I{prefix}/include" in flags and "-lunaccepted" in flags
    exe = tmp_path / "guest_demo"
    subprocess.run(["cc", "-std=c11", str(ROOT / "examples" / "c" / "guest_demo.c"), *flags,
                    "-o", str(exe), f"-Wl,-rpath,{prefix / 'lib'}"], check=True)
    _check_guest_demo(subprocess.run([str(exe)], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.mark.skipif(shutil.which("pkg-config") is None, reason="needs pkg-config")
def test_pkg_config_files_point_where_the_library_is(tmp_path):
    # issue 9: an install after a plain build kept the first build's prefix;
    # the uninstalled .pc serves the build tree
    build, prefix = tmp_path / "b", tmp_path / "prefix"
    make = ["make", "-s", "-C", str(ROOT / "csrc"), f"BUILD={build}"]
    subprocess.run(make + ["all"], check=True, capture_output=True)
    subprocess.run(make + [f"PREFIX={prefix}", "install"], check=True, capture_output=True)
    assert f"prefix={prefix}\n" in (prefix / "lib" / "pkgconfig" / "unaccepted.pc").read_text()
    env = dict(os.environ, PKG_CONFIG_PATH=str(build))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "unaccepted-uninstalled"],
                           env=env, check=True, capture_output=True, text=True).stdout.split()
    assert f"-I{ROOT / 'csrc' / 'include'}" in flags and f"-L{build}" in flags


def test_check_fails_when_it_finds_no_tests(tmp_path):
    proc = subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), f"BUILD={tmp_path}", "check",
                           "TESTS="], capture_output=True, text=True)
    assert proc.returncode != 0 and "no C tests found" in proc.stderr


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang (CI installs it)")
def test_library_builds_with_clang_in_iso_c11(tmp_path):
    proc = subprocess.run(["make", "-s", "-C", str(ROOT / "csrc"), f"BUILD={tmp_path}",
                           "CC=clang", "all", "example"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr


def test_c_benchmark_program_builds_and_runs(build, tmp_path):
    exe = tmp_path / "accept_whole"
    subprocess.run(["cc", "-std=c11", "-O2", "-Wall", "-Werror", f"-I{ROOT / 'csrc' / 'include'}",
                    str(ROOT / "benchmarks" / "c" / "accept_whole.c"),
                    str(build / "libunaccepted.a"), "-pthread", "-o", str(exe)], check=True)
    for vendor in ("snp", "tdx"):
        out = subprocess.run([str(exe), vendor, "4K", "1", "1"], capture_output=True, text=True,
                             check=True).stdout
        assert out.startswith(f"{vendor} 4K 1 GiB: best of 1 ") and "libunaccepted 0.2.0" in out


def test_header_compiles_as_cplusplus(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "use.cpp"
    src.write_text('#include "unaccepted.h"\nint main() { return ua_version() == 0; }\n')
    subprocess.run([cxx, "-std=c++17", "-fsyntax-only", f"-I{ROOT / 'csrc' / 'include'}",
                    str(src)], check=True)
