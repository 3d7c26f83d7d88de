# Headwater. `make run` and `make test` set everything up themselves (see scripts/setup.sh).
SHELL := /bin/bash
PY ?= python3
PORT ?= 8080

.PHONY: setup run serve cluster cluster-down images k8s k8s-down k8s-build test lint typecheck unit e2e bench fuzz clean

setup:
	@bash scripts/setup.sh

run: setup
	@bash scripts/run-demo.sh $(PORT)

serve: setup
	headwater serve --port $(PORT)

# The local cluster (deploy/cluster.json): memcached, Cassandra, ingest and packager nodes, nginx front.
cluster: setup
	headwater cluster up --port $(PORT)

cluster-down:
	headwater cluster down

# Container images (scripts/images/build.sh) and Headwater on a local single-node Kubernetes
# (scripts/k8s/: built once into ~/.cache/headwater-k8s, router port-forwarded to 127.0.0.1:$(PORT)).
images:
	@bash scripts/images/build.sh

k8s:
	@PORT=$(PORT) bash scripts/k8s/up.sh

k8s-down:
	@bash scripts/k8s/down.sh

k8s-build:
	@bash scripts/k8s/build.sh

lint:
	ruff check services tests fuzz bench
	ruff format --check services tests fuzz bench

typecheck:
	mypy

unit:
	$(PY) -m pytest -q -m "not e2e and not k8s"

e2e:
	$(PY) -m pytest -q -m e2e

test: setup lint typecheck
	@PY=$(PY) bash scripts/test.sh

bench: setup
	$(PY) -m bench.run

fuzz: setup
	$(PY) -m pip install -q -e '.[fuzz]'
	$(PY) fuzz/fuzz_reader.py -runs=200000

clean:
	rm -rf .headwater-data .pytest_cache .mypy_cache .ruff_cache .hypothesis
