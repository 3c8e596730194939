# The two front-door commands (README): `make demo` and `make test`.
.PHONY: setup demo test lint bench

setup:
	bash scripts/setup.sh

# Sets up, then composes and renders the main job on the shipped default model.
demo: setup
	.venv/bin/pipeline run --prompt "lofi 80bpm" --stems

# Sets up, then lints and runs the whole test suite (what CI runs).
test:
	STEMFORGE_TEST_TOOLS=1 bash scripts/setup.sh
	.venv/bin/ruff check .
	.venv/bin/python -m pytest

# fluidsynth too (--bench): bench/render.py compares the renderer with it
bench:
	bash scripts/setup.sh --bench
	.venv/bin/python bench/symbolic.py
	.venv/bin/python bench/render.py
