#!/usr/bin/python3
"""Rewrites the option tables of README.md from the stages' own schemas.

    scripts/update-reference.py [build/hbforward] [README.md]

`hbforward stages --markdown` prints one table per stage type between markers
(<!-- options: input http --> ... <!-- end options -->). Each marked block of the README is
replaced by the generated one. A stage whose block the README lacks gets one: under its heading
(### input `http`), replacing the first table there, else as a new section at the end of the
stage reference. tests/e2e/test_reference.py fails when the README differs from what this
script would write.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- options: (.+?) -->\n.*?<!-- end options -->\n", re.S)


def generated(binary):
    out = subprocess.run([str(binary), "stages", "--markdown"], check=True, capture_output=True, text=True).stdout
    return {m.group(1): m.group(0) for m in BLOCK.finditer(out)}


def docs(binary):
    """type -> one-line doc, from `hbforward stages` headers ("input http: doc")."""
    out = subprocess.run([str(binary), "stages"], check=True, capture_output=True, text=True).stdout
    d = {}
    for line in out.splitlines():
        m = re.match(r"^(input|filter|output) (\S+): (.*)$", line)
        if m:
            d[f"{m.group(1)} {m.group(2)}"] = m.group(3)
    return d


def heading_of(key):
    return "### `[service]`" if key == "service" else "### {} `{}`".format(*key.split(" ", 1))


def updated(readme, blocks, stage_docs):
    text = BLOCK.sub(lambda m: blocks.get(m.group(1), m.group(0)), readme)
    for key, block in blocks.items():
        if f"<!-- options: {key} -->" in text:
            continue
        head = heading_of(key)
        at = text.find(head + "\n")
        if at >= 0:
            end = text.find("\n### ", at + len(head))
            end = len(text) if end < 0 else end + 1
            section = text[at:end]
            table = re.search(r"^\| option \|.*\n(?:\|.*\n)*", section, re.M)
            if table:
                section = section[:table.start()] + block + section[table.end():]
            else:
                section = section.rstrip("\n") + "\n\n" + block + "\n"
            text = text[:at] + section + text[end:]
        else:
            ref = text.find("## Stage reference")
            nxt = text.find("\n## ", ref + 1) if ref >= 0 else -1
            new = f"{head}\n{stage_docs.get(key, '')}\n\n{block}\n"
            if nxt < 0:
                text = text.rstrip("\n") + "\n\n" + new
            else:
                text = text[:nxt + 1] + new + text[nxt + 1:]
    return text


def main():
    binary = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build" / "hbforward"
    readme = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "README.md"
    old = readme.read_text()
    new = updated(old, generated(binary), docs(binary))
    if new != old:
        readme.write_text(new)
        print(f"{readme}: option tables updated")
    else:
        print(f"{readme}: up to date")


if __name__ == "__main__":
    main()
