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
REALWORLD ?= ../shared/realworld
PEER_DIR ?= work/peers
DTVENV ?= $(PEER_DIR)/dtvenv
# $(call need,PATH,what to do): stop with one line saying what a target needs when PATH is missing (no commas in it)
need = @test -e $(1) || { echo "make $@: $(1) does not exist: $(2)" >&2; exit 2; }

.DEFAULT_GOAL := help
.PHONY: help setup test lint all demo clean-data plan tokenizer tokenize mix filter filter-report train-classifier dedup train export-model bench bench-clean bench-html bench-edgar bench-plan bench-precision bench-tokenize bench-tokenizer bench-tokenizer-scale bench-train bench-train-gpu bench-throughput-cpu bench-dedup bench-neardup bench-filter bench-filter-finance bench-langid bench-pii bench-route bench-scale peer-venv report report-screenshot clean experiment experiment-continue continue-demo sweep

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "} \
		{n[NR] = $$1; d[NR] = $$2; if (length($$1) > w) w = length($$1)} \
		END{for (i = 1; i <= NR; i++) printf "  %-" w "s  %s\n", n[i], d[i]}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[train,test,report]'
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with test extras (idempotent)

test: setup ## run the whole test suite (CPU only, ~4 min on 2 cores after the install)
	$(PY) -m pytest tests

lint: setup ## ruff over the code
	$(VENV)/bin/ruff check pipelines filters mixtures train tests benchmarks data

# ------------------------------------------------------------------------------------ stages
CLEAN_INPUT ?= 'data/finance/*.jsonl.gz'
CLEAN_OUTPUT ?= $(WORK)/stages/clean/finance
CLEAN_DOMAIN ?= domain
clean-data: setup ## clean stage: make clean-data CLEAN_INPUT='x/*.jsonl.gz' CLEAN_OUTPUT=dir CLEAN_DOMAIN=general
	$(PY) -m pipelines.clean --input $(CLEAN_INPUT) --output $(CLEAN_OUTPUT) --domain $(CLEAN_DOMAIN) $(BEAM)

FILTER_SOURCE ?= reuters
FILTER_INPUT ?= $(WORK)/clean/$(FILTER_SOURCE)
FILTER_OUTPUT ?= $(WORK)/stages/filter/$(FILTER_SOURCE)
FILTER_CONFIG ?= configs/filter/default.yaml
filter: setup ## filter stage (default: a demo source's clean output): make filter FILTER_INPUT=dir FILTER_OUTPUT=dir FILTER_CONFIG=configs/filter/default.yaml
	$(call need,$(FILTER_INPUT),run make demo first (it writes $(WORK)/clean/SOURCE); or set FILTER_INPUT=dir (make clean-data writes $(CLEAN_OUTPUT)))
	$(PY) -m pipelines.filter --input $(FILTER_INPUT) --output $(FILTER_OUTPUT) --config $(FILTER_CONFIG) $(BEAM)

filter-report: setup ## removal rate and example snippets per rule of a filtered directory (FILTER_OUTPUT=dir)
	$(call need,$(FILTER_OUTPUT),run make filter first; or set FILTER_OUTPUT to a filtered directory such as $(WORK)/filter/reuters)
	$(PY) -m pipelines.rule_report $(FILTER_OUTPUT)

train-classifier: setup ## fastText finance-vs-general classifier, held-out precision/recall -> work/models/finance.ftz (needs ../shared/corpora: CORPORA=dir)
	$(call need,$(CORPORA),the labelled corpora (finance/ and general/ *.jsonl.gz) beside the clone; set CORPORA=dir)
	$(PY) -m filters.quality train --positives '$(CORPORA)/finance/*.jsonl.gz' \
		--negatives '$(CORPORA)/general/*.jsonl.gz' --output work/models/finance.ftz

DEDUP_INPUT ?= $(addprefix --input ,$(wildcard $(WORK)/filter/*))
DEDUP_OUTPUT ?= $(WORK)/stages/dedup
DEDUP_ARGS ?= --cross-source
dedup: setup ## dedup stage (default: every demo source's filter output): exact + MinHash LSH near-dups (DEDUP_ARGS='--threshold 0.8 --line-dedup')
	$(call need,$(or $(word 2,$(DEDUP_INPUT)),$(WORK)/filter/SOURCE),run make demo first; or set DEDUP_INPUT='--input dir --input dir')
	$(PY) -m pipelines.dedup $(DEDUP_INPUT) --output $(DEDUP_OUTPUT) $(DEDUP_ARGS) $(BEAM)

TOKENIZER_CONFIG ?= configs/tokenizer/demo.yaml
CURATED ?= $(WORK)/dedup
TOKENIZER_DIR ?= $(WORK)/tokenizer
TOKENS_DIR ?= $(WORK)/tokens
RECIPE ?= $(WORK)/recipe.yaml
MIX_DIR ?= $(WORK)/mix
MIX_ARGS ?= --tokens-dir $(TOKENS_DIR)
tokenizer: setup ## train the tokenizer on curated data (TOKENIZER_CONFIG=configs/tokenizer/unigram.yaml)
	$(PY) -m mixtures.tokenizer --config $(TOKENIZER_CONFIG) --input $(CURATED) --output $(TOKENIZER_DIR)

tokenize: setup ## tokenize stage: curated docs -> token shards per (domain, source) + doc index + stats
	$(PY) -m pipelines.tokenize --input $(CURATED) --output $(TOKENS_DIR) --tokenizer $(TOKENIZER_DIR)/tokenizer.json $(BEAM)

mix: setup ## the mixer: recipe (default: the one make demo wrote) -> train/ val_domain/ val_general/ + manifest.json (MIX_ARGS=--allow-shortfall)
	$(call need,$(RECIPE),run make demo first (it writes the recipe of configs/runs/demo.yaml there); or set RECIPE=mixtures/recipes/bloomberg.yaml)
	$(PY) -m mixtures.mix --recipe $(RECIPE) --output $(MIX_DIR) $(MIX_ARGS)

TRAIN_CONFIG ?= configs/train/tiny.yaml
NPROC ?= 2
ARGS ?=
train: setup ## train a causal LM: make train TRAIN_CONFIG=configs/train/llama1b.yaml NPROC=8 ARGS="data.dir=MIX"
	$(if $(filter command line,$(origin CONFIG)),@echo "make train: CONFIG is the run config of make all;" \
		"the training config is TRAIN_CONFIG=$(CONFIG)" >&2; exit 2)
	$(PY) -m train.run --nproc-per-node $(NPROC) --config $(TRAIN_CONFIG) $(ARGS)

CHECKPOINT ?= $(WORK)/train
EXPORT_DIR ?= $(WORK)/hf
export-model: setup ## consolidated safetensors + HF Llama config.json + tokenizer + model card
	$(PY) -m train.export --checkpoint $(CHECKPOINT) --output $(EXPORT_DIR)

# ------------------------------------------------------------------------------------ planner
PLAN_ARGS ?= --model-config configs/train/llama1b.yaml --gpu h100-80gb --gpus 8
plan: setup ## will it fit, tokens, FLOPs, days: make plan PLAN_ARGS='--params 50.6e9 --gpu a100-40gb --gpus 512'
	$(PY) -m train.plan $(PLAN_ARGS)

# -------------------------------------------------------------------------------------- demo
CONFIG ?= configs/runs/demo.yaml
RUN_ARGS ?=
all: setup ## one run config, raw corpora -> report: make all CONFIG=configs/runs/x.yaml [RUN_ARGS='--until mix']
	$(PY) -m run --config $(CONFIG) $(RUN_ARGS)

demo: setup ## the demo run on the embedded sample in data/ (make all CONFIG=configs/runs/demo.yaml) -> work/demo
	$(MAKE) all CONFIG=configs/runs/demo.yaml

report: setup ## run report of WORK (work/demo): WORK/report.html, one offline file with figures, + report.md
	$(PY) -m run.report --work $(WORK) > /dev/null
	@echo "report: $(WORK)/report.html (summary: $(WORK)/report.md)"

report-screenshot: report ## headless chromium PNG of the report -> WORK/report.png (apt-get install chromium)
	bash benchmarks/report_screenshot.sh $(WORK) $(WORK)/report.png

# -------------------------------------------------------------------------------- benchmarks
bench: bench-clean bench-html bench-edgar bench-filter bench-filter-finance bench-langid bench-pii bench-route bench-neardup bench-dedup bench-tokenizer bench-tokenize bench-scale bench-train bench-plan bench-precision ## every benchmark, ~1 h on 2 cores (benchmarks/RESULTS.md)

bench-clean: setup ## clean stage docs/s and MB/s per core vs the plain Python loop
	$(PY) benchmarks/bench_clean.py --corpora $(CORPORA) --results benchmarks/RESULTS.md

bench-html: setup ## HTML extractors: quality vs hand-checked text, pages/s
	$(PY) benchmarks/bench_html.py --input $(CORPORA)/html/news_pages.jsonl.gz --results benchmarks/RESULTS.md

bench-edgar: setup ## EDGAR filings -> text: text/number recall per filing vs visible text, MB/s, candidate extractors (~1 min)
	$(PY) benchmarks/bench_edgar.py --input $(REALWORLD)/edgar_html --results benchmarks/RESULTS.md

$(TOKENIZER_DIR)/tokenizer.json:
	$(MAKE) demo

bench-tokenize: setup $(TOKENIZER_DIR)/tokenizer.json ## tokenize stage tokens/s and MB/s per core vs a plain encode_batch loop
	$(PY) benchmarks/bench_tokenize.py --tokenizer $(TOKENIZER_DIR)/tokenizer.json --results benchmarks/RESULTS.md

bench-tokenizer: setup ## bytes/token of Unigram, BPE and GPT-2 BPE on held-out domain and general text (~3 min)
	$(PY) benchmarks/bench_tokenizer.py --results benchmarks/RESULTS.md

bench-tokenizer-scale: setup ## Unigram training at 8/32/128 MB: split-and-merge vs today's trainer, wall/CPU/RSS/bytes per token (~1.5 h; TOKENIZER_SCALE_ARGS='--runs new:8 today:8')
	$(PY) benchmarks/bench_tokenizer_scale.py --corpora $(CORPORA) --results benchmarks/RESULTS.md $(TOKENIZER_SCALE_ARGS)

bench-train: setup ## trainer tokens/s + memory per rank: ddp/fsdp/hsdp (2 ranks) vs a plain PyTorch loop (~7 min)
	$(PY) benchmarks/bench_train.py --results benchmarks/RESULTS.md

bench-train-gpu: setup ## tokens/s/GPU, MFU (head counted), peak memory for ~1B and ~125M + a row per throughput fix (CUDA machine, ~7 min)
	PYTHON=$(PY) RESULTS=benchmarks/RESULTS.md bash benchmarks/gpu_train.sh

bench-throughput-cpu: setup ## the CPU-side throughput checks: loader seq/s, head+loss memory, fused step time (~3 min)
	$(PY) benchmarks/bench_throughput_cpu.py --results benchmarks/RESULTS.md

NEARDUP ?= $(WORK)/neardup
PEERS ?= $(CORPORA)/../peers
peer-venv: ## datatrove 0.10.1 in its own venv (work/peers/dtvenv), offline, for the filter/dedup peer benchmarks
	@test -x $(DTVENV)/bin/python || test -e $(PEERS)/setup_datatrove_venv.sh || { echo "make $@: needs" \
		"$(PEERS)/setup_datatrove_venv.sh (../shared/peers beside the clone; set PEERS=dir)" >&2; exit 2; }
	test -x $(DTVENV)/bin/python || bash $(PEERS)/setup_datatrove_venv.sh $(DTVENV) $(PEER_DIR)/dtmodel

bench-filter: setup ## filter stage vs datatrove 0.10.1: documents/s per core + decision agreement (~5-10 min)
	$(PY) benchmarks/bench_filter.py --corpus $(CORPORA)/general --workdir work/bench_filter --dt-venv $(DTVENV) --results benchmarks/RESULTS.md

bench-filter-finance: setup ## clean + filter defaults on ../shared/realworld finance files: kept per type, built junk set removed (~1 min)
	$(PY) benchmarks/bench_filter_finance.py --realworld $(REALWORLD) --results benchmarks/RESULTS.md

bench-langid: setup ## language-ID accuracy per language on a labelled multilingual set
	$(PY) benchmarks/build_langid_set.py
	$(PY) benchmarks/bench_langid.py --results benchmarks/RESULTS.md

bench-pii: setup ## PII P/R per kind: third-party PII set + finance files (../shared/realworld), injected set vs datatrove if work/peers/dtvenv exists
	$(PY) benchmarks/bench_pii.py --corpora $(CORPORA) --realworld $(REALWORLD) --dt-venv $(DTVENV) --results benchmarks/RESULTS.md

bench-route: setup ## domain harvesting: `--route finance` on ../shared/realworld as one crawl + held-out sweeps (~1 min; needs ../shared/realworld)
	$(PY) benchmarks/bench_route.py --corpora $(CORPORA) --realworld $(REALWORLD) --results benchmarks/RESULTS.md

bench-neardup: setup ## near-dup quality: P/R/F1 vs labels at t=0.7/0.8/0.9, + datatrove 0.10.1 if work/peers/dtvenv exists
	test -f $(NEARDUP)/labels.jsonl || $(PY) benchmarks/neardup/build.py --output $(NEARDUP)
	$(PY) benchmarks/neardup/evaluate.py --data $(NEARDUP) --results benchmarks/RESULTS.md \
		$$(test -x $(DTVENV)/bin/python && echo --datatrove-python $(DTVENV)/bin/python)

bench-dedup: setup ## dedup docs/s per core + peak RSS: signatures 10k/100k/1M, whole stage 10k/100k (~12 min)
	$(PY) benchmarks/bench_dedup.py --work $(WORK)/bench_dedup --results benchmarks/RESULTS.md

SCALE_ARGS ?=
bench-scale: setup ## clean/filter/dedup/tokenize peak RSS + docs per CPU-s at 10k/100k/1M docs (SCALE_ARGS='--sizes 10000')
	$(PY) benchmarks/bench_scale.py --corpora $(CORPORA) --results benchmarks/RESULTS.md $(SCALE_ARGS)

bench-plan: setup ## planner: trainer activation bytes measured vs formulas (CPU, ~15 s)
	$(PY) benchmarks/plan_activations.py --results benchmarks/RESULTS.md

bench-precision: setup $(MIX_DIR)/manifest.json ## fp32/bf16/fp16/int8/int4/8da4w + QAT: held-out ppl, bpb, size, CPU tok/s (~4 min)
	$(PY) benchmarks/bench_precision.py --mix $(MIX_DIR) --results benchmarks/RESULTS.md

$(MIX_DIR)/manifest.json:
	$(MAKE) demo

experiment: setup ## BloombergGPT's claim: 51/49 blend vs general-only, same budget, 3 seeds -> docs/experiment.md (~15 min)
	$(PY) benchmarks/experiment.py

SWEEP_ARGS ?=
sweep: setup ## mixture search: proxies on a grid of blends, a fitted mixing law, the recommended recipe confirmed vs 51/49: make sweep CONFIG=configs/runs/experiment.yaml (~15 min) -> docs/experiment.md (SWEEP_ARGS='--general-tolerance 0.05 --no-confirm')
	$(PY) -m mixtures.sweep --config $(CONFIG) $(SWEEP_ARGS)

CONTINUE_ARGS ?=
experiment-continue: setup ## continued pretraining: the experiment's general-only model continued with 0/5/25/49% general replay vs from scratch, 3 seeds -> docs/experiment.md (~15 min after make experiment; CONTINUE_ARGS='--seeds 1 --steps 20')
	$(PY) benchmarks/experiment_continue.py $(CONTINUE_ARGS)

continue-demo: setup ## continued pretraining of the demo's exported model on the demo mixture (configs/runs/continue_demo.yaml, ~1 min) -> work/continue_demo
	$(call need,work/demo/mix/manifest.json,run make demo first (it writes the mixture and the exported model that the continue demo starts from))
	$(call need,work/demo/hf/config.json,run make demo first (it writes the exported model work/demo/hf that the continue demo continues))
	$(MAKE) all CONFIG=configs/runs/continue_demo.yaml

clean: ## remove work/ outputs (keeps .venv)
	rm -rf work
