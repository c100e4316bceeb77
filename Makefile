# batchsweep: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch requirement pip installs first. Plain `torch` gives the CUDA build on Linux GPU boxes;
# CI and CPU-only machines may pass TORCH_SPEC=torch==2.13.0 (a CPU wheel) to install faster.
TORCH_SPEC ?= torch>=2.4
STAMP := $(VENV)/.installed

SPACE ?= default
STUDY ?=
TRIALS ?=
EPOCHS ?=
FOLDS ?=
DATASET ?=
DEVICE ?=
WORKERS ?=
ARGS ?=
UI_PORT ?= 5000
SERVER_PORT ?= 5000
# The store `make ui` and `make server` serve: $MLFLOW_TRACKING_URI when it names a database
# (sqlite:, postgresql[+driver]:, mysql[+driver]:), else SQLite under mlruns/; `make server
# SERVER_BACKEND=postgresql://...` names another. Shell code: the URL stays in the environment.
TRACKING_DB_SH = case "$$MLFLOW_TRACKING_URI" in sqlite:*|postgresql*|mysql*) db="$$MLFLOW_TRACKING_URI";; \
	*) db=sqlite:///mlruns/mlflow.db;; esac

SWEEP_FLAGS = --space $(SPACE) $(if $(STUDY),--study $(STUDY)) $(if $(TRIALS),--trials $(TRIALS)) \
	$(if $(EPOCHS),--epochs $(EPOCHS)) $(if $(FOLDS),--folds $(FOLDS)) \
	$(if $(DATASET),--dataset $(DATASET)) $(if $(DEVICE),--device $(DEVICE)) \
	$(if $(WORKERS),--workers $(WORKERS)) $(ARGS)

.PHONY: help install sweep worker server ui best refit report compare test lint clean bench bench-gpu

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: SPACE STUDY TRIALS EPOCHS FOLDS DATASET DEVICE WORKERS ARGS (sweep);"
	@echo "             SERVER_BACKEND SERVER_PORT (server); TORCH_SPEC (install); QUICK (bench)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP) ## create .venv in the repo and install batchsweep with its dev tools

sweep: $(STAMP) ## run (or resume) a sweep: SPACE=default TRIALS= EPOCHS= FOLDS= DATASET= DEVICE= ARGS=
	$(BIN)/sweep run $(SWEEP_FLAGS)

worker: $(STAMP) ## join STUDY in shared storage: make worker STUDY=name ARGS="--storage postgresql://..."
	@test -n "$(STUDY)" || { echo "make worker needs STUDY=<name> (and usually ARGS=\"--storage URL\")"; exit 2; }
	$(BIN)/sweep worker --study $(STUDY) $(if $(DEVICE),--device $(DEVICE)) $(ARGS)

# The store's URL goes to MLflow and `sweep ui-url` through the environment, never on a command
# line (ps shows those to every user, and make echoes them): it may hold a password.
server: $(STAMP) ## MLflow tracking server on 127.0.0.1:SERVER_PORT over MLFLOW_TRACKING_URI's database (else mlruns/) or SERVER_BACKEND
	@mkdir -p mlruns/artifacts
	@$(TRACKING_DB_SH); db="$${SERVER_BACKEND:-$$db}"; \
	export MLFLOW_TRACKING_URI="$$db" MLFLOW_BACKEND_STORE_URI="$$db"; \
	$(BIN)/sweep ui-url --base http://127.0.0.1:$(SERVER_PORT) && \
	exec $(BIN)/mlflow server --artifacts-destination mlruns/artifacts --host 127.0.0.1 --port $(SERVER_PORT)

ui: $(STAMP) ## MLflow UI on 127.0.0.1 over MLFLOW_TRACKING_URI (else mlruns/); prints the newest study's URL
	@mkdir -p mlruns
	@case "$$MLFLOW_TRACKING_URI" in http://*|https://*) \
		$(BIN)/sweep ui-url --base "$$MLFLOW_TRACKING_URI"; \
		echo "(MLFLOW_TRACKING_URI is a tracking server, which serves its own UI: nothing to start)"; \
		exit 0;; esac; \
	$(TRACKING_DB_SH); export MLFLOW_TRACKING_URI="$$db" MLFLOW_BACKEND_STORE_URI="$$db"; \
	$(BIN)/sweep ui-url --base http://127.0.0.1:$(UI_PORT) && \
	exec $(BIN)/mlflow ui --host 127.0.0.1 --port $(UI_PORT)

best: $(STAMP) ## print the best config of STUDY (default: the space's name) as JSON
	$(BIN)/sweep best --study $(or $(STUDY),$(SPACE)) $(ARGS)

refit: $(STAMP) ## train STUDY's best config on all the data; save mlruns/models/STUDY.pt, log it to MLflow
	$(BIN)/sweep refit --study $(or $(STUDY),$(SPACE)) $(ARGS)

report: $(STAMP) ## print the batch-size report of STUDY (default: the space's name), write its figures
	$(BIN)/sweep report --study $(or $(STUDY),$(SPACE))

compare: $(STAMP) ## the article's experiment (full vs 64 vs 1) on its synthetic data and on diabetes, with reports
	$(BIN)/sweep run --space seed_article --study seed_article $(ARGS)
	$(BIN)/sweep report --study seed_article
	$(BIN)/sweep run --space seed_article --study seed_article_diabetes --dataset diabetes $(ARGS)
	$(BIN)/sweep report --study seed_article_diabetes

test: $(STAMP) ## run the test suite
	$(BIN)/python -m pytest --durations=15 $(ARGS)

bench: $(STAMP) ## naive vs stacked, busy host, whole process vs scikit-learn, FLOP/s (QUICK=1: small)
	$(BIN)/python -m sweep.benchmark $(ARGS)
	$(BIN)/python -m trainers.module_engine.bench
	$(BIN)/python -m trainers.busy_host_bench $(if $(QUICK),--epochs 3 --repeats 1)
	$(BIN)/python -m trainers.flops_bench $(if $(QUICK),--quick)
	$(BIN)/python -m tests.benchmarks.whole_process $(if $(QUICK),--quick)

bench-gpu: ## the trainers' benchmark alone (torch + scikit-learn only), for a GPU box: DEVICE=cuda
	$(or $(wildcard $(BIN)/python),$(PYTHON)) -m trainers.benchmark --device $(or $(DEVICE),auto) \
		--compile --bf16 --batch32 $(ARGS)

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: ## remove the local stores under mlruns/ (asks first) and caches; keeps .venv
	@if [ -n "$$(ls -A mlruns 2>/dev/null | grep -v '^.gitkeep$$')" ]; then \
		read -r -p "Delete every study and run under mlruns/? [y/N] " answer; \
		[ "$$answer" = y ] && find mlruns -mindepth 1 ! -name .gitkeep -delete && echo "mlruns/ emptied"; \
	fi; true
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
