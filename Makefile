# Two-command set-up: `make book` builds the site, `make test` runs every check.
# Both create .venv from the pinned requirements.txt on first use.

SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JB     := $(BIN)/jupyter-book
PIP_QUIET := -q

.PHONY: help venv book pdf test robust grade gpu-check unit notebooks lab-check site-check weights student strip serve lab clean clean-all

help:
	@echo "make book   build the web book into _build/html (executes every notebook)"
	@echo "make test   unit tests, Chapter 4 in JupyterLab, the book build (executes every notebook once), the PDF, checks of site and PDF"
	@echo "make pdf    the book as one PDF, _build/pdf/book.pdf (after make book; needs TeX Live, see README)"
	@echo "make lab    JupyterLab on the notebooks"
	@echo "make robust the slow end-to-end tests, then every notebook under three seed offsets (DIFFEDU_SEED_OFFSET)"
	@echo "make notebooks  every notebook through nbval (live widgets), seeds as stored"
	@echo "make gpu-check  on a GPU machine: unit tests and every chapter on CUDA, CPU-vs-CUDA numbers (python3, no venv)"
	@echo "make lab-check  Chapter 4 run through JupyterLab in chromium (part of make test)"
	@echo "make serve  preview the built site on http://127.0.0.1:8000"
	@echo "make strip  clear notebook outputs before committing (and regenerate the install cell and book/api.md)"
	@echo "make student  the student edition of the notebooks (_build/student, with a zip)"
	@echo "make grade SUBMISSIONS=dir [SALT=n]  grade submitted notebooks with the hidden checks (_build/grades)"
	@echo "make weights  retrain the shipped score models (about 6 min)"
	@echo "make clean  remove _build"

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_QUIET) -r requirements.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(BIN)/python -m pip install $(PIP_QUIET) --no-deps --no-build-isolation -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
	$(BIN)/python -m pip check
	$(BIN)/python -c "import diffedu, torch, jupyter_book; print('diffedu', diffedu.__version__, '| torch', torch.__version__)"
	touch $(STAMP)

# DIFFEDU_STATIC=1: interactive figures render as static figures in the web book; their frames
# are written to book/_extra/explorer-frames (copied to the site root) and loaded on first use.
# The student edition is built first: book/homework.md links its zip with {download}.
FRAMES := book/_extra/explorer-frames
# The notebooks are executed first, NB_JOBS at a time, into the jupyter cache that the build reads (each runs once).
NB_JOBS ?= 2
book: $(STAMP)
	$(BIN)/python scripts/make_student.py
	rm -rf $(FRAMES)
	DIFFEDU_STATIC=1 DIFFEDU_FRAMES_DIR=$(CURDIR)/$(FRAMES) $(BIN)/python scripts/execute_notebooks.py --jobs $(NB_JOBS)
	DIFFEDU_STATIC=1 DIFFEDU_FRAMES_DIR=$(CURDIR)/$(FRAMES) $(JB) build -W -n --keep-going .
	@echo
	@echo "The book is built. Open: file://$(CURDIR)/_build/html/index.html"

# The PDF (Sphinx's LaTeX builder, XeLaTeX): built from the doctrees of `make book`, so no notebook is
# executed again. Needs Debian's texlive-xetex, texlive-latex-recommended, texlive-latex-extra,
# texlive-fonts-recommended, latexmk, xindy, fonts-freefont-otf, fonts-noto-cjk (README). XeLaTeX exits 0
# when a glyph is missing, so the log is searched for "Missing character". Copied into the site as book.pdf.
LATEX := _build/latex
pdf: $(STAMP)
	@command -v xelatex >/dev/null && command -v latexmk >/dev/null || { echo "make pdf needs TeX Live: see the README (texlive-xetex, latexmk, fonts-noto-cjk, ...)"; exit 2; }
	@test -f _build/html/index.html || { echo "make pdf reuses the executed notebooks of the site: run make book first"; exit 2; }
	DIFFEDU_STATIC=1 DIFFEDU_FRAMES_DIR=$(CURDIR)/_build/latex-frames $(JB) build -W -n --keep-going --builder latex .
	rm -f $(LATEX)/book.pdf $(LATEX)/book.fdb_latexmk
	$(MAKE) -C $(LATEX) all-pdf LATEXMKOPTS="-interaction=nonstopmode -halt-on-error -silent" > $(LATEX)/make-pdf.log 2>&1 || { tail -40 $(LATEX)/make-pdf.log; exit 1; }
	@! grep -n "Missing character" $(LATEX)/book.log || { echo "make pdf: glyphs missing from the PDF (above; book.log)"; exit 1; }
	@! grep -n "There were undefined references" $(LATEX)/book.log || { echo "make pdf: references printed as ?? (book.log)"; exit 1; }
	mkdir -p _build/pdf && cp $(LATEX)/book.pdf _build/pdf/book.pdf && cp $(LATEX)/book.pdf _build/html/book.pdf
	@echo "The PDF is built: _build/pdf/book.pdf (also in the site as book.pdf)"

# TEST_JOBS pytest workers (pytest-xdist), one thread each: most tests are small and Python-bound.
TEST_JOBS ?= 2
unit: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -m "not site and not lab and not slow" -q -n $(TEST_JOBS)

notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks -q

# Chapter 4 run through JupyterLab's UI in chromium: no errors, the live ħ explorer redraws, MyST renders.
lab-check: $(STAMP)
	$(BIN)/python -m pytest tests -m lab -q

site-check: $(STAMP)
	$(BIN)/python -m pytest tests -m site -q

# Each notebook is executed once here, by the book build (an error or a failed check cell fails it, and
# the site shows fresh outputs); `make robust` runs them again through nbval, in live-widget mode.
test: unit lab-check book pdf site-check
	@echo "make test: all checks passed"

# Every check must hold for any seed: every seed of the book (de.make_generator, de.manual_seed) is shifted.
# Two offsets run through nbval; the third runs through the grader, which executes every cell as nbval does
# (any error fails it) and also runs the instructor's hidden checks, which must all give full marks.
ROBUST_OFFSETS := 101 2027
GRADE_OFFSET := 31337
# On a machine with a GPU: its python3 (a CUDA build of torch, pytest, matplotlib), nothing installed.
GPU_PYTHON ?= python3
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py

robust: $(STAMP)
	@echo "== the end-to-end tests marked slow: the student edition up to its first stub, the grader on synthetic submissions"
	$(BIN)/python -m pytest tests -m slow -q
	@for off in $(ROBUST_OFFSETS); do \
	  echo "== DIFFEDU_SEED_OFFSET=$$off"; \
	  DIFFEDU_SEED_OFFSET=$$off $(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks -q || exit 1; \
	done
	@echo "== DIFFEDU_SEED_OFFSET=$(GRADE_OFFSET): the grader on the book's notebooks, hidden checks with salt $(GRADE_OFFSET)"
	rm -rf _build/robust-grade && mkdir -p _build/robust-grade/book && cp notebooks/[0-9][0-9]_*.ipynb _build/robust-grade/book/
	DIFFEDU_SEED_OFFSET=$(GRADE_OFFSET) $(BIN)/python scripts/grade.py _build/robust-grade --out _build/robust-grade/out \
	  --salt $(GRADE_OFFSET) --require-full-marks
	@echo "make robust: every notebook passed under offsets $(ROBUST_OFFSETS) $(GRADE_OFFSET), and every hidden check"

# Grade a folder of submissions (one folder per student) with the hidden checks of grading/hidden_checks.py.
# Pick your own SALT each term: it changes the hidden checks' inputs. Results: _build/grades/grades.csv, feedback/.
SUBMISSIONS ?=
SALT ?= 0
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder [SALT=n]"; exit 2; }
	$(BIN)/python scripts/grade.py "$(SUBMISSIONS)" --salt $(SALT) --out _build/grades

# Retrain the four shipped score models, together as one batched network on two threads (about 6 minutes on 2 cores).
weights: $(STAMP)
	$(BIN)/python scripts/train_weights.py --threads 2

# The student edition: solutions replaced by stubs, checks kept (into _build/student, with a zip).
student: $(STAMP)
	$(BIN)/python scripts/make_student.py

strip: $(STAMP)
	$(BIN)/python scripts/sync_install_cell.py
	$(BIN)/python scripts/make_api_page.py
	$(BIN)/python scripts/strip_notebooks.py

# Preview the built site on http://127.0.0.1:8000 (after `make book`).
serve:
	@test -f _build/html/index.html || { echo "build the book first: make book"; exit 1; }
	$(PYTHON) -m http.server 8000 --bind 127.0.0.1 --directory _build/html

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf _build

clean-all: clean
	rm -rf $(VENV)
