"""The README's commands and code stay true."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    block = re.match(r"```sh\n(.*?)```", README, re.S)
    assert block, "README must begin with the two commands"
    lines = [l for l in block.group(1).splitlines() if l.strip()]
    assert lines == ['pip install . && unaccepted matrix',
                     'pip install -e ".[test]" && python -m pytest -n auto']
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]" && python -m pytest -n auto' in ci
    assert (ROOT / "examples" / "traces" / "basic.jsonl").exists()


def test_readme_python_examples_run():
    namespace = {}                       # the blocks tell one story, in order
    for code in re.findall(r"```python\n(.*?)```", README, re.S):
        exec(compile(code, "README.md", "exec"), namespace)


def test_main_job_runs():
    # the policy matrix: vendor x firmware x loader x kernel = 3 x 4 x 8 x 9
    # boots, one row each, then the summary per vendor and firmware
    proc = subprocess.run([sys.executable, "-m", "unaccepted", "matrix"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    body, summary = proc.stdout.split("Policy summary")
    rows = [ln for ln in body.splitlines()[2:] if ln.strip()]
    assert len(rows) == 3 * 4 * 8 * 9
    assert len([ln for ln in summary.splitlines()[4:] if ln.strip()]) == 3 * 4


def test_docs_python_examples_run():
    for doc in sorted((ROOT / "docs").glob("*.md")):
        namespace = {}
        for code in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S):
            exec(compile(code, str(doc), "exec"), namespace)
