"""The source distribution carries what it takes to build and test it."""
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_sdist_carries_the_tests_and_the_typing_marker(tmp_path):
    # issue 9: the sdist lacked tests/c, the test helpers, benchmarks and .ci,
    # so `make -C csrc check` in an unpacked sdist ran zero tests
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True)
    (sdist,) = tmp_path.glob("unaccepted-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in tar.getnames()
                 if len(Path(n).parts) > 1}
    for needed in ("pyproject.toml", "setup.py", ".ci/run", "unaccepted/py.typed",
                   "csrc/Makefile", "csrc/include/unaccepted.h", "tests/c/test_core.c",
                   "tests/c/ua_test.h", "tests/tdx/_tdx_both.py", "tests/conftest.py",
                   "benchmarks/conftest.py", "benchmarks/c/accept_whole.c",
                   "examples/c/guest_demo.c", "docs/guest.md"):
        assert needed in names, needed


def test_wheel_is_abi3_and_leaves_the_builder_out(tmp_path):
    # issue 9: the wheel shipped _build.py (it reads csrc/ from the tree and
    # cannot be imported once installed) and was tagged for one CPython
    # although cffi builds the extension against the limited API
    import zipfile
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("unaccepted-*.whl")
    assert wheel.name.endswith("-cp39-abi3-linux_x86_64.whl"), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "unaccepted/_build.py" not in names
    assert "unaccepted/py.typed" in names and "unaccepted/boot.py" in names
    assert any(n.startswith("unaccepted/_core.abi3") for n in names)


@pytest.mark.slow
def test_an_unpacked_sdist_passes_its_own_c_tests(tmp_path):
    # issue 9: `make -C csrc check` in an unpacked sdist must find and pass
    # the C tests (it ran none before); and the fuzz harnesses travel with it
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)], cwd=ROOT,
                   check=True, capture_output=True)
    (sdist,) = tmp_path.glob("unaccepted-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path / "src")
    (top,) = (tmp_path / "src").iterdir()
    assert (top / "fuzz" / "run-ci.sh").exists() and any((top / "fuzz" / "corpus").iterdir())
    assert (top / "benchmarks" / "threads.sh").exists()
    proc = subprocess.run(["make", "-s", "-C", str(top / "csrc"), f"BUILD={tmp_path / 'b'}",
                           "check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ran = [ln for ln in proc.stdout.splitlines() if " passed, 0 failed" in ln]
    assert len(ran) >= 4 and all(not ln.split(":")[1].strip().startswith("0 passed")
                                 for ln in ran)
