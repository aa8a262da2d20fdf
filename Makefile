# btlab — the commands a user needs. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SQLCHECK := tests/store/questdb_sql/node_modules/.installed
COMPOSE := docker compose -f deploy/docker-compose.yml

.PHONY: help install demo test bench research up down logs ps lock clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,rl]"
	touch $(STAMP)

# QuestDB's own SQL parser (npm) for tests/store/test_questdb_sql.py; without npm that check is skipped, saying so
$(SQLCHECK): tests/store/questdb_sql/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tests/store/questdb_sql --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the QuestDB SQL parser check (tests/store/test_questdb_sql.py) will be skipped"; fi

install: $(STAMP)  ## create .venv and install btlab with its test tools and the rl extra (torch CPU)

demo: $(STAMP)  ## import real BTC/USDT 1h bars, backtest sma_cross, print metrics, write the HTML report
	$(BIN)/btlab data import data/BTC_USDT-1h_2017-08-17_2024-04-21.feather --exchange binance --symbol BTC/USDT --timeframe 1h
	$(BIN)/btlab backtest --strategy sma_cross --symbol BTC/USDT --timeframe 1h --from 2020-01-01 --to 2023-12-31 \
		--param fast=10 --param slow=30 --cash 10000 --commission 0.001

# test files run on TEST_WORKERS processes (pytest-xdist; each file's tests stay together on one); 1: one process
TEST_WORKERS ?= 2
test: $(STAMP) $(SQLCHECK)  ## run the whole test suite (TEST_WORKERS=1: in one process)
	$(BIN)/python -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile)

bench: $(STAMP)  ## run the benchmarks and write benchmarks/RESULTS.md (ONLY=replay,sink: just those sections)
	$(BIN)/python benchmarks/run.py $(if $(ONLY),--only $(ONLY))

research: $(STAMP)  ## judge every research strategy out of sample on the bundled data, write docs/RESEARCH.md (ONLY=orb,rl_tilt)
	$(BIN)/python research/run.py $(if $(ONLY),--only $(ONLY))

up:  ## start the full stack (QuestDB, Redpanda, Grafana, the demo job) with docker compose; see deploy/README.md
	@test -f deploy/.env || { echo "first: cp deploy/.env.example deploy/.env and set the passwords in it"; exit 1; }
	$(COMPOSE) up -d --build
	@echo "QuestDB console http://127.0.0.1:9000  Grafana http://127.0.0.1:3000  Kafka 127.0.0.1:19092"
	@echo "the demo job fills the store in a minute or two: make logs"

down:  ## stop the stack (data volumes are kept; add -v by hand to delete them)
	$(COMPOSE) down

logs:  ## follow the logs of every service of the stack
	$(COMPOSE) logs -f --tail 100

ps:  ## the stack's services, their health and the demo job's exit code
	$(COMPOSE) ps -a

lock:  ## regenerate deploy/requirements.lock (the Docker image's dependencies with their hashes) from pyproject.toml
	$(BIN)/pip install --quiet pip-tools
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file deploy/requirements.lock pyproject.toml

clean:  ## remove the virtual environment, caches and generated reports
	rm -rf $(VENV) .pytest_cache reports
