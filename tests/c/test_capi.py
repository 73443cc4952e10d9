"""The C library for simulators written in C/C++: built with make from the
same sources as the extension, its unit tests and example program run."""
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
    assert "Version: 0.1.0" in pc and "-lunaccepted" in pc
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
    assert lines[0] == "libunaccepted 0.1.0"
    # 1024 contiguous 4 MiB blocks (2048 units) plus the last block's guard
    # unit, out of 3072 units of 2 MiB
    assert "accept calls: 1024" in lines[2]
    assert lines[3] == "units still unaccepted: 1023"


def test_header_compiles_as_cplusplus(tmp_path):
    cxx = shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    src = tmp_path / "use.cpp"
    src.write_text('#include "unaccepted.h"\nint main() { return ua_version() == 0; }\n')
    subprocess.run([cxx, "-std=c++17", "-fsyntax-only", f"-I{ROOT / 'csrc' / 'include'}",
                    str(src)], check=True)
