"""The README's option tables are generated from the stages' schemas (`hbforward stages --markdown`)."""
import importlib.util

from conftest import HBF, ROOT, run_cli

spec = importlib.util.spec_from_file_location("update_reference", ROOT / "scripts" / "update-reference.py")
update_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(update_reference)


def test_the_readme_stage_reference_matches_the_schemas():
    readme = (ROOT / "README.md").read_text()
    blocks = update_reference.generated(HBF)
    assert "input http" in blocks and "service" in blocks
    want = update_reference.updated(readme, blocks, update_reference.docs(HBF))
    stale = [k for k, b in blocks.items() if b not in readme]
    assert want == readme, f"README.md option tables differ from the schemas for {stale}: run scripts/update-reference.py"


def test_markdown_tables_say_type_default_and_doc():
    blocks = update_reference.generated(HBF)
    http = blocks["input http"]
    assert "| `max_body` | size | `1MiB` |" in http
    assert "| `address` | string | `0.0.0.0:8080` |" in http
    assert "| `inputs` | list of strings | required |" in blocks["output kafka"]
    assert "| `linger` | duration | `2ms` |" in blocks["service"]


def test_stages_of_an_unknown_type_exits_1_and_lists_the_known_ones():
    r = run_cli("stages", "NOSUCH")
    assert r.returncode == 1
    assert "no stage type 'NOSUCH'" in r.stderr
    for t in ("input http", "filter dedupe", "output kafka", "service"):
        assert t in r.stderr
    r = run_cli("stages", "dedup")
    assert r.returncode == 1 and "(did you mean 'dedupe'?)" in r.stderr
    r = run_cli("stages", "dedupe")
    assert r.returncode == 0 and "filter dedupe:" in r.stdout
