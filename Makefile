# The two set-up commands (see README.md): `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast bench services clean

# PYTHONWARNINGS: setuptools explains editable installs on every one (InformationOnly), not for users.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Scaffold an employees project with sample rows into a scratch folder and serve it.
demo: $(STAMP)
	$(BIN)/robaccia-admin demo

# Temporary files of the tests (projects, databases, browsers) stay in the
# checkout and are removed after the run: nothing is left in the system's /tmp.
TESTTMP := $(CURDIR)/tests/output/tmp

# The whole test suite: installs what it needs, starts local services, runs pytest.
test: $(STAMP)
	bash scripts/services.sh
	bash scripts/browser.sh
	bash scripts/tools.sh
	rm -rf $(TESTTMP) && mkdir -p $(TESTTMP)
	TMPDIR=$(TESTTMP) $(BIN)/python -m pytest -p no:cacheprovider; status=$$?; rm -rf $(TESTTMP); exit $$status

# The suite without the browser and multi-process tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python benchmarks/run.py --http

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
