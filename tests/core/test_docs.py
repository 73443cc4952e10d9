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
    assert lines == ['pip install . && unaccepted replay examples/traces/basic.jsonl',
                     'pip install -e ".[test]" && python -m pytest']
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[test]"' in ci and "python -m pytest" in ci
    assert (ROOT / "examples" / "traces" / "basic.jsonl").exists()


def test_readme_python_examples_run():
    namespace = {}                       # the blocks tell one story, in order
    for code in re.findall(r"```python\n(.*?)```", README, re.S):
        exec(compile(code, "README.md", "exec"), namespace)


def test_main_job_runs():
    proc = subprocess.run([sys.executable, "-m", "unaccepted", "replay",
                           str(ROOT / "examples" / "traces" / "basic.jsonl")],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 5


def test_docs_python_examples_run():
    for doc in sorted((ROOT / "docs").glob("*.md")):
        namespace = {}
        for code in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S):
            exec(compile(code, str(doc), "exec"), namespace)
