# cemssl_ik: two commands for a newcomer (`make demo`, `make test`); both set up what they need.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source tools/env.sh &&

.PHONY: setup demo test lint bench-fk clean

setup:
	@bash tools/setup.sh

demo: setup
	@$(ENV) python -m cemssl_ik.demo

test: setup
	@$(ENV) cd cemssl_ik && python -m pytest -q -ra -p no:cacheprovider --timeout=900

lint: setup
	@$(ENV) ruff check cemssl_ik tools

bench-fk: setup
	@$(ENV) cemssl-ik bench fk

clean:
	rm -rf build install log .venv cemssl_ik/*.egg-info
