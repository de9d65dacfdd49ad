# The README's two commands. Each creates the virtual environment ./venv on first use
# (python3 -m venv, then pip install -e '.[test]') and reuses it afterwards.
#   make demo                 # srcomp demo (make demo ARGS=--quick for the smoke run)
#   make test                 # the test suite, as CI runs it
PYTHON ?= python3
VENV ?= venv
STAMP := $(VENV)/.srcomp-installed

.PHONY: demo test

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip
	$(VENV)/bin/pip install -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/srcomp demo $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest tests -q -rs
