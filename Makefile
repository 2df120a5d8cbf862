# The two commands that matter: `make run` and `make test`. Both install what is missing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: install run test lint bench clean

$(STAMP): pyproject.toml scripts/install-system-packages.sh
	./scripts/install-system-packages.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/issuer db upgrade
	$(BIN)/issuer demo
	@echo "Serving issuer at http://$(HOST):$(PORT)  (Ctrl-C to stop)"
	$(BIN)/flask --app wsgi run --host $(HOST) --port $(PORT) --no-reload

lint: install
	$(BIN)/ruff check issuer tests bench migrations wsgi.py
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 2 --dist loadgroup

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
