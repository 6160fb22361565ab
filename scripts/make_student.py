"""Build the student edition of the chapter notebooks (run by `make student`).

For every notebooks/NN_*.ipynb this writes _build/student/NN_*.ipynb in which
  * each code cell tagged `solution` becomes a stub (`# YOUR CODE HERE` + `raise NotImplementedError()`),
    keeping the cell id and tagged `stub`, so stubs and solutions can be paired;
  * every Markdown cell from `{solution-start}` to `{solution-end}` (the solution prose) is removed;
  * outputs and execution counts are cleared; the check cells stay.
It also writes an instructor README and a zip of both (byte-for-byte reproducible).

Usage: python scripts/make_student.py [--out DIR]
"""

import argparse
import copy
import json
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
ZIP_NAME = "diffedu-student-notebooks.zip"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def student_notebook(nb: dict) -> dict:
    out = copy.deepcopy(nb)
    cells, inside = [], False
    for cell in out["cells"]:
        src = _source(cell)
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] == "markdown" and "```{solution-start}" in src:
            inside = True
            continue
        if cell["cell_type"] == "markdown" and "```{solution-end}" in src:
            inside = False
            continue
        if inside and cell["cell_type"] != "code":
            continue
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            if "solution" in tags:
                cell["source"] = STUB
                cell["metadata"]["tags"] = [t for t in tags if t != "solution"] + ["stub"]
            elif inside:
                raise ValueError(f"untagged code cell {cell.get('id')} inside a solution block")
        cells.append(cell)
    if inside:
        raise ValueError("a solution block is never closed")
    out["cells"] = cells
    return out


README = """# Student edition: instructor notes

These notebooks are the chapters of *Diffusion models through stochastic calculus and path
integrals* with the exercise solutions removed:

* every solution code cell is replaced by a stub (`# YOUR CODE HERE` / `raise NotImplementedError()`);
* the written solutions are removed;
* the check cell after each exercise stays: it calls a function of `diffedu.checks`, which
  computes its own reference and tells the student whether the answer is right, with a hint
  when it is not (it never reveals the reference value).

Students need the `diffedu` package (`pip install -e .` in the book's repository, or the
hidden first cell on Colab). A notebook runs normally up to the first exercise and stops at
the first stub; after an exercise is solved, its check cell prints a line starting with ✔.

Chapters and exercises: see the Homework page of the book. Rebuild with `make student`.
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        target = args.out / path.name
        target.write_text(json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    readme = args.out / "README.md"
    readme.write_text(README)
    with zipfile.ZipFile(args.out / ZIP_NAME, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted([readme, *written], key=lambda p: p.name):
            info = zipfile.ZipInfo(f.name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, f.read_bytes())
    print(f"student edition: {len(written)} notebooks, README.md and {ZIP_NAME} in {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
