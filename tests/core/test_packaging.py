"""The source distribution carries what it takes to build and test it."""
import subprocess
import sys
import tarfile
from pathlib import Path

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
