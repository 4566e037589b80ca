"""The README's Python examples run as written: each ```python block in a fresh interpreter, in a scratch
folder, after the block that defines the user method has been saved as byol_example.py (as the README says)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PLUGIN_MARK = "class BYOL(Method)"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_the_examples_it_promises():
    blocks = python_blocks()
    assert len(blocks) >= 5
    assert sum(PLUGIN_MARK in b for b in blocks) == 1
    assert any("register_method(" in b for b in blocks) and any("Trainer(BYOL(" in b for b in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path):
    blocks = python_blocks()
    plugin = next(b for b in blocks if PLUGIN_MARK in b)
    (tmp_path / "byol_example.py").write_text(plugin)
    done = subprocess.run([sys.executable, "-c", blocks[index]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"README block {index} failed:\n{blocks[index]}\n{done.stderr[-3000:]}"
