# CharacterForge: every target sets up what it needs (exact versions from requirements/*.lock).
PYTHON ?= python3
VENV := .venv
VENV42 := .venv-bpy42
PY := $(VENV)/bin/python
OUT ?= out
PROFILE ?= sdxl
export HF_HUB_OFFLINE ?= 1

.PHONY: setup test test-fast demo bench extension docs clean

$(VENV)/.installed: requirements/dev.lock
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.lock
	touch $@

$(VENV42)/.installed: requirements/bpy42.lock
	rm -rf $(VENV42)
	$(PYTHON) -m venv $(VENV42)
	$(VENV42)/bin/python -m pip install --quiet --upgrade pip
	$(VENV42)/bin/python -m pip install --quiet -r requirements/bpy42.lock
	touch $@

setup: $(VENV)/.installed $(VENV42)/.installed

# Every test on bpy 5.0.1, then the smoke subset on bpy 4.2.23 (the minimum the manifest claims).
test: setup
	$(PY) -m pytest -q tests
	$(VENV42)/bin/python -m pytest -q -m smoke tests/blender

test-fast: $(VENV)/.installed
	$(PY) -m pytest -q tests/core tests/test_import_boundaries.py

demo: $(VENV)/.installed
	$(PY) blender_scripts/make_demo.py --out $(OUT)/demo --profile $(PROFILE)

bench: $(VENV)/.installed
	$(PY) blender_scripts/bench/bench_controls.py

# The guide's pictures (docs/img) and docs/job-specs.md, made again from the code (under a minute).
docs: $(VENV)/.installed
	$(PY) blender_scripts/dev/make_docs.py

extension: $(VENV)/.installed
	$(PY) blender_scripts/dev/build_extension.py --validate

clean:
	rm -rf build dist $(OUT) .pytest_cache
