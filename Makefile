# Two entry points for a fresh machine: `make run` (main job) and `make test` (test suite).
# Both create .venv and install the project into it first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export ORT_DISABLE_TELEMETRY := 1
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: run test install browser lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and alone, so pip takes the local CPU wheel and never a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[train,dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/escalation run

# The dashboard's browser tests drive Debian's chromium. Installed here when missing and
# running as root (CI, a fresh machine); elsewhere install it yourself, or the browser tests
# are skipped locally (and fail under CI=true).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "chromium not found: 'apt-get install chromium' to run the dashboard's browser tests"

test: $(STAMP) browser
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check serving pipelines tests
	$(BIN)/mypy serving pipelines

clean:
	rm -rf $(VENV) var mlflow.db
