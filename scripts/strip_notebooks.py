"""Clear outputs, execution counts and volatile metadata of notebooks before committing.

Usage: python scripts/strip_notebooks.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)
"""

import secrets
import sys
from pathlib import Path

import nbformat


def strip(path: Path) -> bool:
    nb = nbformat.read(path, as_version=4)
    before = path.read_text().rstrip("\n")
    seen = set()
    for cell in nb.cells:
        # nbformat 4.5 needs a unique id per cell (the student edition pairs stubs and solutions by it)
        if not cell.get("id") or cell.id in seen:
            cell.id = secrets.token_hex(4)
        seen.add(cell.id)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in ("execution", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb)
    if after.rstrip("\n") != before:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
        return True
    return False


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("notebooks").glob("*.ipynb"))
    changed = [p for p in paths if strip(p)]
    print("stripped:", ", ".join(map(str, changed)) if changed else "nothing to do")
