"""Functions stay short: scripts/long-functions.sh lists none over 60 lines in src/ or stages/."""
import shutil
import subprocess

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "long-functions.sh"
pytestmark = pytest.mark.skipif(shutil.which("ctags") is None, reason="needs universal-ctags")


def long_functions(*dirs, cwd=ROOT):
    r = subprocess.run(["bash", str(SCRIPT), *map(str, dirs)], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_no_function_in_src_or_stages_is_longer_than_60_lines():
    out = long_functions("src", "stages")
    assert out == "", f"functions over 60 lines (split them by idea):\n{out}"


def test_the_lister_finds_a_61_line_function_and_passes_a_60_line_one(tmp_path):
    body = lambda n: "".join(f"    x += {i};\n" for i in range(n - 3))
    (tmp_path / "a.cpp").write_text(f"int too_long(int x) {{\n{body(61)}    return x;\n}}\n\n"
                                    f"int just_fits(int x) {{\n{body(60)}    return x;\n}}\n")
    out = long_functions(tmp_path)
    assert "too_long" in out and out.split()[0] == "61"
    assert "just_fits" not in out
