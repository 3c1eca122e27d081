# domainlm: raw corpora -> curated data -> 51/49 mixture -> trained domain model.
# `make help` lists every target. Variables can be overridden: make clean-data INPUT=... OUTPUT=...

SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORK ?= work/demo
BEAM ?= --runner DirectRunner
CORPORA ?= ../shared/corpora

.DEFAULT_GOAL := help
.PHONY: help setup test lint demo clean-data bench bench-clean bench-html clean

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[train,test]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with test extras (idempotent)

test: setup ## run the whole test suite (CPU only, ~10 min on 2 cores)
	$(PY) -m pytest tests

lint: setup ## ruff over the code
	$(VENV)/bin/ruff check pipelines filters mixtures train tests benchmarks data

# ------------------------------------------------------------------------------------ stages
CLEAN_INPUT ?= 'data/finance/*.jsonl.gz'
CLEAN_OUTPUT ?= $(WORK)/clean/finance
CLEAN_DOMAIN ?= domain
clean-data: setup ## clean stage: make clean-data CLEAN_INPUT='x/*.jsonl.gz' CLEAN_OUTPUT=dir CLEAN_DOMAIN=general
	$(PY) -m pipelines.clean --input $(CLEAN_INPUT) --output $(CLEAN_OUTPUT) --domain $(CLEAN_DOMAIN) $(BEAM)

# -------------------------------------------------------------------------------------- demo
demo: setup ## every stage on the embedded sample in data/ -> $(WORK)
	$(PY) -m pipelines.clean --input 'data/finance/*.jsonl.gz' --output $(WORK)/clean/finance --domain domain $(BEAM)
	$(PY) -m pipelines.clean --input 'data/general/*.jsonl.gz' --input 'data/html/*.jsonl.gz' \
		--output $(WORK)/clean/general --domain general $(BEAM)
	@echo "demo done: stage outputs and stats.json under $(WORK)/"

# -------------------------------------------------------------------------------- benchmarks
bench: bench-clean bench-html ## every benchmark (see benchmarks/RESULTS.md)

bench-clean: setup ## clean stage docs/s and MB/s per core vs the plain Python loop
	$(PY) benchmarks/bench_clean.py --corpora $(CORPORA)

bench-html: setup ## HTML extractors: quality vs hand-checked text, pages/s
	$(PY) benchmarks/bench_html.py --input $(CORPORA)/html/news_pages.jsonl.gz

clean: ## remove work/ outputs (keeps .venv)
	rm -rf work
