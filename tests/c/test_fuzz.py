"""The fuzzing and sanitizer set-up (docs/fuzzing.md) as tests that need only
make and a C compiler: the libFuzzer harnesses build with $(CC) against the
standalone driver and hold their invariants on the seed corpus (so every
input a fuzzer once crashed on, kept in the corpus, stays a regression test),
the committed corpus is what fuzz/make_corpus.py writes, and a UBSan finding
fails `make check` (-fno-sanitize-recover=all)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HARNESSES = ["fuzz_batch_ops", "fuzz_memmap", "fuzz_snp", "fuzz_table_parse", "fuzz_tdx"]

needs_cc = pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None,
                              reason="needs make and a C compiler")


@needs_cc
def test_harnesses_hold_their_invariants_on_the_seed_corpus(tmp_path):
    proc = subprocess.run(["make", "-s", "-j4", "-C", str(ROOT / "fuzz"), f"BUILD={tmp_path}",
                           "replay"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    for h in HARNESSES:
        line = next(l for l in proc.stdout.splitlines() if l.startswith(f"{tmp_path}/replay/{h}:"))
        assert "all invariants held" in line and " 0 inputs" not in line, line


def test_committed_corpus_is_what_make_corpus_writes(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "fuzz" / "make_corpus.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    committed = ROOT / "fuzz" / "corpus"
    for h in HARNESSES:
        want = {p.name: p.read_bytes() for p in (tmp_path / h).iterdir()}
        got = {p.name: p.read_bytes() for p in (committed / h).iterdir()}
        assert got == want, f"fuzz/corpus/{h} differs: run python3 fuzz/make_corpus.py"
        assert all(len(data) < 4096 for data in got.values())


def _ubsan_links(tmp_path) -> bool:
    src = tmp_path / "t.c"
    src.write_text("int main(void) { return 0; }\n")
    return subprocess.run(["cc", "-fsanitize=undefined", str(src), "-o", str(tmp_path / "t")],
                          capture_output=True).returncode == 0


@needs_cc
def test_a_ubsan_finding_fails_make_check(tmp_path):
    if not _ubsan_links(tmp_path):
        pytest.skip("the C compiler has no UBSan runtime")
    build = tmp_path / "ub"
    proc = subprocess.run(["make", "-s", "-j4", "-C", str(ROOT / "csrc"), f"BUILD={build}",
                           "SAN=undefined", "check", f"TESTS={build}/tests/ub_probe"],
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert "runtime error" in out and "signed integer overflow" in out, out
    assert proc.returncode != 0, out
