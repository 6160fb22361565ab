"""Grade a folder of submitted notebooks with the instructor's hidden checks (`make grade SUBMISSIONS=dir`).

Layout of SUBMISSIONS: one folder per student holding that student's notebooks (`alice/01_ito_processes.ipynb`),
or notebooks directly in SUBMISSIONS, named after the student. A notebook's chapter is read from its exercise
headings ("**Exercise 1.2 (...)**" in the student edition, `{exercise}` labels in the book's own notebooks); when
its file name starts with a chapter number (`01_...`), the two must agree.

For each notebook the grader
  * copies it into a fresh, empty working directory (the submission itself is never opened for writing: a cell
    that deletes files deletes them in that copy's directory);
  * inserts after the cells of every exercise one cell that runs that exercise's hidden check
    (grading/hidden_checks.py, or --checks FILE) on the names the exercise asks for;
  * executes the copy in a fresh kernel, in a subprocess with a memory limit (--memory-gb) and a time limit per
    cell (--timeout: a cell still running is interrupted and the next one runs) and for the whole notebook;
  * gives each exercise its points when the hidden check passes, and 0 with the reason otherwise: "not attempted"
    when its stub (`raise NotImplementedError()`) is still there, the check's message for a wrong answer, the
    error of the student's cell, a timeout, a dead kernel, a notebook that is not valid JSON or of another chapter.
Results: OUT/grades.csv (student, chapter, exercise, label, points, max_points, reason) and
OUT/feedback/<student>.md. A broken submission never stops the grading of the others.

Usage: python scripts/grade.py SUBMISSIONS [--out DIR] [--salt N] [--timeout S] [--memory-gb G]
                               [--checks FILE] [--require-full-marks]
--require-full-marks exits with status 1 unless every exercise got full points and no cell raised an error
(`make robust` runs it on the book's own notebooks).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ROOT / "grading" / "hidden_checks.py"
GRADE_TAG = "diffedu-grade"
GRADE_MIME = "application/vnd.diffedu.grade+json"
STUDENT_HEADING = re.compile(r"\*\*Exercise (\d+)\.(\d+)\b")
HEADING = re.compile(r"^ {0,3}#{1,6}\s", re.M)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                    # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


def _source(cell) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    return "".join(map(str, src)) if isinstance(src, list) else str(src)


_STUDENT = _load(ROOT / "scripts" / "make_student.py", "_make_student")     # the student edition's builder


# ---------------------------------------------------------------------------------------------
# The book's exercises: label -> "C.K", and the exercises of one notebook
# ---------------------------------------------------------------------------------------------

class Exercises:
    """Every numbered exercise of the book: ``number`` ("C.K") <-> ``label``, read by the student-edition builder."""

    def __init__(self):
        self.student = _STUDENT
        self.book = self.student.Book()
        self.number = dict(self.book.exercises)                       # label -> "C.K"
        self.label = {n: lab for lab, n in self.number.items()}       # "C.K" -> label

    def of_chapter(self, chapter: int) -> list[str]:
        return sorted((lab for lab, n in self.number.items() if int(n.split(".")[0]) == chapter),
                      key=lambda lab: int(self.number[lab].split(".")[1]))

    def title(self, chapter: int) -> str:
        for docname, title in self.book.titles.items():
            m = re.match(r"notebooks/(\d+)_", docname)
            if m and int(m.group(1)) == chapter:
                return title
        return f"Chapter {chapter}"

    def headings(self, cells) -> list[tuple[int, str]]:
        """(cell index, label) of each exercise statement of a notebook, in either form (the first cell that
        names an exercise is its statement; a student's own "**Exercise 1.3 (a)**" further down is not)."""
        found, seen = [], set()
        for i, cell in enumerate(cells):
            if cell.get("cell_type") != "markdown":
                continue
            text = _source(cell)
            labels = [opts.get("label") for _title, opts in self.student._exercise_headers(text)]
            labels += [self.label.get(f"{m.group(1)}.{m.group(2)}") for m in STUDENT_HEADING.finditer(text)]
            for label in labels:
                if label in self.number and label not in seen:
                    seen.add(label)
                    found.append((i, label))
        return found


def spans(cells, headings) -> dict[str, tuple[int, int]]:
    """label -> (first, end) cell indices of an exercise: from its statement to just after its public check cell
    (the last code cell calling ``checks.check_`` before the next statement); without one, up to the next
    statement, or the notebook's next heading after the last exercise. A student's own headings or cells
    inside the span do not cut it short."""
    starts = sorted({i for i, _ in headings})
    out = {}
    for i, label in headings:
        nxt = next((j for j in starts if j > i), None)
        limit = nxt if nxt is not None else len(cells)
        checks = [j for j in range(i + 1, limit) if isinstance(cells[j], dict) and cells[j].get("cell_type") == "code"
                  and "checks.check_" in _source(cells[j])]
        if checks:
            end = checks[-1] + 1
        elif nxt is not None:
            end = nxt
        else:
            end = i + 1
            while end < len(cells) and not (cells[end].get("cell_type") == "markdown" and HEADING.search(_source(cells[end]))):
                end += 1
        out.setdefault(label, (i, end))
    return out


# ---------------------------------------------------------------------------------------------
# Executing one notebook (in a worker subprocess, with limits)
# ---------------------------------------------------------------------------------------------

def check_cell(label: str, checks: Path, salt: int) -> dict:
    code = (f"(lambda g: (exec(compile(open({str(checks)!r}).read(), {str(checks)!r}, 'exec'), g), "
            f"g['report']({label!r}, globals(), {salt})))({{'__name__': 'diffedu_hidden_checks'}});")
    return {"cell_type": "code", "execution_count": None, "id": f"grade-{label}",
            "metadata": {"tags": [GRADE_TAG]}, "outputs": [], "source": code}


def _worker(src: Path, dst: Path, timeout: int) -> None:
    """Execute notebook ``src`` (cwd = its directory) and write what each code cell did to ``dst``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(str(src), as_version=4)
    cells: dict[int, dict] = {}
    state = {"current": None}

    def started(cell, cell_index, **_):
        state["current"] = cell_index

    def executed(cell, cell_index, execute_reply, **_):
        content = (execute_reply or {}).get("content", {})
        if content.get("status") == "error":
            evalue = " ".join(str(content.get("evalue", "")).split())          # one line: it goes into a table
            cells[cell_index] = {"ename": content.get("ename", "Error"), "evalue": evalue[:500]}

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, record_timing=False,
                            error_on_timeout={"ename": "Timeout", "evalue": f"the cell ran for more than {timeout} s "
                                              "and was interrupted", "traceback": []},
                            on_cell_execute=started, on_cell_executed=executed,
                            resources={"metadata": {"path": str(src.parent)}})
    died = None
    try:
        client.execute()
    except DeadKernelError:
        died = state["current"]
    grades = {}
    for cell in nb.cells:
        if GRADE_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        label = cell["id"][len("grade-"):]
        for out in cell.get("outputs", []):
            raw = out.get("data", {}).get(GRADE_MIME) if out.get("output_type") == "display_data" else None
            try:
                g = json.loads(raw) if isinstance(raw, str) else None
            except ValueError:
                g = None
            if isinstance(g, dict) and g.get("label") == label and isinstance(g.get("passed"), bool):
                grades[label] = {"label": label, "passed": g["passed"], "reason": str(g.get("reason", ""))[:2000]}
    dst.write_text(json.dumps({"cells": {str(k): v for k, v in cells.items()}, "grades": grades, "died": died}))


def _limits(memory_gb: float):
    def apply():
        limit = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def execute(nb: dict, *, timeout: int, memory_gb: float, total: int) -> dict:
    """Run a notebook (already holding the check cells) in a fresh directory, kernel and process."""
    work = Path(tempfile.mkdtemp(prefix="diffedu-grade-"))
    result = Path(tempfile.mkdtemp(prefix="diffedu-grade-result-")) / "result.json"
    try:
        (work / "submission.ipynb").write_text(json.dumps(nb))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "JUPYTER_RUNTIME"))}
        env["MPLBACKEND"] = "agg"
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(work / "submission.ipynb"),
                                 str(result), "--timeout", str(timeout)], cwd=work, env=env, preexec_fn=_limits(memory_gb),
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=total)
        except subprocess.TimeoutExpired:
            _kill(proc)
            return {"stopped": f"the notebook ran for more than {total} s in all and was stopped"}
        if not result.exists():
            tail = (err or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            return {"stopped": f"the notebook could not be executed ({tail[0][:300]})"}
        return json.loads(result.read_text())
    finally:
        _kill_kernels_in(work)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(result.parent, ignore_errors=True)


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _kill_kernels_in(work: Path):
    """Kernels start in a session of their own: stop any left running in ``work`` (after a killed worker)."""
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(work):
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            continue


# ---------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    student: str
    chapter: int | str
    exercise: str
    label: str
    points: float
    max_points: float
    reason: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)      # student -> other cells' errors
    every_error: list[str] = field(default_factory=list)             # every cell's error (--require-full-marks)


def chapter_of_name(path: Path) -> int | None:
    m = re.match(r"(\d+)_", path.name)
    return int(m.group(1)) if m else None


def submissions(folder: Path) -> list[tuple[str, Path | None]]:
    """(student, notebook) pairs; (student, None) for a student folder without any notebook."""
    out = []
    for entry in sorted(folder.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and entry.suffix != ".ipynb":
            found = sorted(p for p in entry.rglob("*.ipynb") if p.is_file() and ".ipynb_checkpoints" not in p.parts)
            out += [(entry.name, nb) for nb in found] or [(entry.name, None)]
        elif entry.suffix == ".ipynb":
            out.append((entry.stem, entry))
    return out


def keep_best(rows: list[Row]) -> tuple[list[Row], list[str]]:
    """One row per (student, exercise): a student who handed in two notebooks of a chapter keeps the better grade."""
    best: dict[tuple, Row] = {}
    notes = []
    for r in rows:
        key = (r.student, r.label) if r.label != "-" else (r.student, r.label, r.reason)
        if key in best:
            notes.append(f"{r.student}: more than one notebook for exercise {r.exercise}; the better grade is kept")
            if r.points > best[key].points:
                best[key] = r
        else:
            best[key] = r
    return list(best.values()), sorted(set(notes))


def _is_stub(text: str) -> bool:
    """Whether a cell still holds the stub the student edition put there (scripts/make_student.py's STUB)."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    return all(s in lines for s in _STUDENT.STUB.splitlines())


def grade_notebook(student: str, path: Path, ex: Exercises, hidden, args, report: Report) -> None:
    expected = chapter_of_name(path)

    def zero_all(chapter, reason):
        labels = ex.of_chapter(chapter) if chapter else []
        for label in labels:
            report.rows.append(Row(student, chapter, ex.number[label], label, 0, hidden.EXERCISES[label][0], reason))
        if not labels:
            report.rows.append(Row(student, chapter or "?", "-", "-", 0, 0, f"{path.name}: {reason}"))

    try:
        nb = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
        cells = [c for c in nb["cells"] if isinstance(c, dict)]
    except (UnicodeDecodeError, ValueError) as err:
        zero_all(expected, f"the file is not a valid notebook ({type(err).__name__}: {err})")
        return
    headings = ex.headings(cells)
    chapters = sorted({int(ex.number[lab].split(".")[0]) for _, lab in headings})
    if not chapters:
        zero_all(expected, "no exercise of the book was found in this notebook (its exercise headings were removed?)")
        return
    found = chapters[0] if len(chapters) == 1 else None
    if found is None or (expected is not None and found != expected):
        what = f"Chapter {found}'s" if found else "a mix of chapters " + ", ".join(map(str, chapters))
        zero_all(expected or chapters[0], f"{path.name} is {what} notebook ({ex.title(found) if found else ''}), "
                                          f"not Chapter {expected}'s: submit the right file")
        return
    chapter = found
    span = spans(cells, headings)
    run_cells, positions, check_at = [], {}, {}
    inserts = {end: label for label, (_start, end) in span.items()}
    for i, cell in enumerate(cells + [None]):
        if i in inserts:
            check_at[inserts[i]] = len(run_cells)
            run_cells.append(check_cell(inserts[i], args.checks, args.salt))
        if cell is not None:
            positions[len(run_cells)] = i
            c = dict(cell)
            c.setdefault("id", f"submitted-{i}")          # nbformat 4.4 notebooks have no cell ids
            if c.get("cell_type") == "code":
                c["outputs"], c["execution_count"] = [], None
            run_cells.append(c)
    run_nb = dict(nb, cells=run_cells, nbformat=4, nbformat_minor=5)
    if not isinstance(run_nb.get("metadata"), dict):
        run_nb["metadata"] = {}
    run_nb.setdefault("metadata", {})["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    n_code = sum(c.get("cell_type") == "code" for c in run_cells)
    result = execute(run_nb, timeout=args.timeout, memory_gb=args.memory_gb,
                     total=min(args.total_timeout, args.timeout * n_code + 120))
    raw = {int(k): v for k, v in result.get("cells", {}).items()}
    errors = {positions[k]: v for k, v in raw.items() if k in positions}
    died = result.get("died")
    died_at = max((positions[k] for k in positions if k <= died), default=None) if died is not None else None
    for label in ex.of_chapter(chapter):
        points = hidden.EXERCISES[label][0]
        row = Row(student, chapter, ex.number[label], label, 0, points, "")
        report.rows.append(row)
        if label not in span:
            row.reason = "the exercise's statement is missing from the notebook"
            continue
        start, end = span[label]
        own = [i for i in range(start, end) if cells[i].get("cell_type") == "code"]
        stub = any(_is_stub(_source(cells[i])) for i in own)
        g = result.get("grades", {}).get(label)
        cell_errors = [f"cell {i + 1} raised {errors[i]['ename']}: {errors[i]['evalue']}" for i in own if i in errors]
        if stub and not (g and g["passed"]) and (g is None or g["reason"].startswith("not defined")):
            row.reason = "not attempted (the stub `raise NotImplementedError()` is still in the answer cell)"
            continue
        if g and g["passed"]:
            row.points, row.reason = points, "correct: " + g["reason"]
        elif g and cell_errors and g["reason"].startswith("not defined"):
            row.reason = "; ".join(cell_errors) + " — so " + g["reason"]
        elif g:
            row.reason = g["reason"] + ("" if not cell_errors else " — " + "; ".join(cell_errors))
        elif "stopped" in result:
            row.reason = "not graded: " + result["stopped"]
        elif check_at[label] in raw:
            e = raw[check_at[label]]
            row.reason = (f"the hidden check stopped: {e['ename']}: {e['evalue']} (it calls your function on new inputs)"
                          + ("" if not cell_errors else " — " + "; ".join(cell_errors)))
        elif died is not None and died == check_at[label]:
            row.reason = "the kernel died while the hidden check ran your code on new inputs (it exited, or ran out of memory)"
        elif died is not None and died < check_at[label]:
            where = f"at or before cell {died_at + 1}" if died_at is not None else "in an earlier hidden check"
            row.reason = f"not graded: the kernel died {where} (out of memory, or the process exited)"
        else:
            timeouts = [e for e in cell_errors if "Timeout" in e]
            row.reason = "; ".join(timeouts or cell_errors) or "the hidden check did not run"
    exercise_cells = {i for (s, e) in span.values() for i in range(s, e)}
    others = [f"{path.name}, cell {i + 1}: {v['ename']}: {v['evalue']}" for i, v in sorted(errors.items())
              if i not in exercise_cells]
    report.errors.setdefault(student, []).extend(others)
    report.every_error += [f"{student}/{path.name}, cell {i + 1}: {v['ename']}: {v['evalue']}" for i, v in sorted(errors.items())]
    report.every_error += [f"{student}/{path.name}: {result['stopped']}"] if "stopped" in result else []


def write(report: Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "chapter", "exercise", "label", "points", "max_points", "reason"])
        for r in report.rows:
            w.writerow([r.student, r.chapter, r.exercise, r.label, f"{r.points:g}", f"{r.max_points:g}", r.reason])
    feedback = out / "feedback"
    if feedback.exists():
        shutil.rmtree(feedback)
    feedback.mkdir()
    used = set()
    for student in sorted({r.student for r in report.rows}):
        rows = [r for r in report.rows if r.student == student]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", student) or "student"
        name = stem if stem.lower() not in used else f"{stem}-{hashlib.sha1(student.encode()).hexdigest()[:6]}"
        used.add(name.lower())
        got, total = sum(r.points for r in rows), sum(r.max_points for r in rows)
        lines = [f"# Feedback for {student}", "", f"Total: **{got:g} / {total:g}** points.", ""]
        for chapter in sorted({str(r.chapter) for r in rows}):
            lines += [f"## Chapter {chapter}", "", "| exercise | points | |", "|---|---|---|"]
            for r in (r for r in rows if str(r.chapter) == chapter):
                lines.append(f"| {r.exercise} | {r.points:g} / {r.max_points:g} | {r.reason.replace('|', '/')} |")
            lines.append("")
        if report.errors.get(student):
            lines += ["## Other cells that raised an error", ""] + [f"* {e}" for e in report.errors[student]] + [""]
        (feedback / f"{name}.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("submissions", type=Path, nargs="?")
    p.add_argument("--out", type=Path, default=ROOT / "_build" / "grades")
    p.add_argument("--salt", type=int, default=int(os.environ.get("DIFFEDU_GRADE_SALT", "0")))
    p.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")
    p.add_argument("--total-timeout", type=int, default=1800, help="seconds per notebook (default 1800)")
    p.add_argument("--memory-gb", type=float, default=6.0, help="address-space limit of a notebook's kernel (default 6)")
    p.add_argument("--checks", type=Path, default=CHECKS)
    p.add_argument("--require-full-marks", action="store_true")
    p.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], args.worker[1], args.timeout)
        return 0
    if args.submissions is None or not args.submissions.is_dir():
        p.error(f"SUBMISSIONS must be a folder of notebooks, got {args.submissions}")
    for name, value, low in (("--timeout", args.timeout, 1), ("--total-timeout", args.total_timeout, 1),
                             ("--memory-gb", args.memory_gb, 1)):
        if value < low:
            p.error(f"{name} must be >= {low}, got {value}")
    args.checks = args.checks.resolve()
    hidden = _load(args.checks, "diffedu_hidden_checks")
    ex = Exercises()
    missing = sorted(set(ex.number) - set(hidden.EXERCISES))
    if missing:
        p.error(f"{args.checks} has no hidden check for {', '.join(missing)}")
    report = Report()
    for student, path in submissions(args.submissions):
        t0 = time.time()
        if path is None:
            report.rows.append(Row(student, "?", "-", "-", 0, 0, "no notebook (.ipynb) found in the student's folder"))
            continue
        try:
            grade_notebook(student, path, ex, hidden, args, report)
        except Exception as err:                  # noqa: BLE001 — one broken submission never stops the others
            report.rows.append(Row(student, chapter_of_name(path) or "?", "-", "-", 0, 0,
                                   f"{path.name} could not be graded ({type(err).__name__}: {err})"))
        print(f"{student}/{path.name}: graded in {time.time() - t0:.0f} s", flush=True)
    report.rows, notes = keep_best(report.rows)
    for note in notes:
        report.errors.setdefault(note.split(":")[0], []).append(note)
    write(report, args.out)
    got, total = sum(r.points for r in report.rows), sum(r.max_points for r in report.rows)
    print(f"{len(report.rows)} exercises graded: {got:g} / {total:g} points -> {args.out / 'grades.csv'}")
    if args.require_full_marks:
        lost = [r for r in report.rows if r.points < r.max_points]
        errs = report.every_error
        for r in lost:
            print(f"LOST {r.student} {r.exercise} {r.label}: {r.reason}")
        for e in errs:
            print(f"ERROR {e}")
        return 1 if lost or errs or not report.rows else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
