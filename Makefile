# The two commands that matter: `make run` and `make test`. Both install what is missing first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

CATALOG := issuer/translations/zh/LC_MESSAGES/messages

.PHONY: install run serve worker test lint bench clean translations i18n-extract

$(STAMP): pyproject.toml scripts/install-system-packages.sh
	./scripts/install-system-packages.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# The Chinese catalog is compiled whenever its source changes (the .mo file is not committed).
$(CATALOG).mo: $(CATALOG).po $(STAMP)
	$(BIN)/pybabel compile -d issuer/translations >/dev/null

install: $(STAMP) $(CATALOG).mo

translations: $(CATALOG).mo

# After adding or changing messages: extract them and merge them into the catalog to translate.
i18n-extract: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -o issuer/translations/messages.pot . >/dev/null
	$(BIN)/pybabel update -i issuer/translations/messages.pot -d issuer/translations --no-fuzzy-matching >/dev/null

run: install
	$(BIN)/issuer db upgrade
	$(BIN)/issuer demo
	@echo "Serving issuer at http://$(HOST):$(PORT)  (Ctrl-C to stop)"
	$(BIN)/flask --app wsgi run --host $(HOST) --port $(PORT) --no-reload

# Production serving: gunicorn with issuer/gunicorn_conf.py (README, "Running in production").
# Set DATABASE_URL, SECRET_KEY, ISSUER_KEY_PASSPHRASE, ISSUER_ENV=production, and REDIS_URL
# for the job queue; run `make worker` (as many as there are cores) beside it.
serve: install
	$(BIN)/issuer db upgrade
	$(BIN)/gunicorn -c python:issuer.gunicorn_conf wsgi:app

worker: install
	$(BIN)/issuer worker

lint: install
	$(BIN)/ruff check issuer tests bench migrations wsgi.py
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 2 --dist loadgroup

# The benchmarks also need wrk (bench/serve_verify.py): installed here when missing, not by make run/test.
bench: install
	./scripts/install-system-packages.sh wrk  # the load generator of bench/serve_verify.py
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
