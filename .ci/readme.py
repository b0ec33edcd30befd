"""Render README.md from nbs/index.ipynb (Quarto, and so `nbdev_readme`, is not available here).

    python .ci/readme.py          # rewrite README.md
    python .ci/readme.py --check  # exit 1 if README.md is not what index.ipynb renders to
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def render() -> str:
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))
    parts = []
    for cell in nb["cells"]:
        src = "".join(cell["source"]).strip("\n")
        if not src:
            continue
        if cell["cell_type"] == "markdown":
            parts.append(src.replace("](images/", "](nbs/images/"))   # pictures live beside the notebook
        elif cell["cell_type"] == "code":
            lines = src.splitlines()
            directives = [l for l in lines if l.startswith("#|")]
            if any(d.split()[1:2] in (["hide"], ["export"]) for d in directives):
                continue
            body = "\n".join(l for l in lines if not l.startswith("#|")).strip("\n")
            parts.append(f"```python\n{body}\n```")
    return "<!-- generated from nbs/index.ipynb by .ci/readme.py: edit the notebook, not this file -->\n\n" + \
        "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    text = render()
    readme = ROOT / "README.md"
    if "--check" in sys.argv:
        if readme.read_text(encoding="utf-8") != text:
            sys.exit("README.md is out of date with nbs/index.ipynb: run `python .ci/readme.py` and commit")
    else:
        readme.write_text(text, encoding="utf-8")
