# Set-up and entry points. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch/torchvision first: these exact versions install from local files here;
# other versions would download gigabytes.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: venv run test docs test-slow test-slurm lint mutation bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $@

venv: $(VENV)/.installed

# The default experiment: an S-VAE with d = 2 on the synthetic S^2 mixture.
run: venv
	$(VENV)/bin/svae-bench run
	@echo "outputs: runs/default/synthetic/svae/d=2/beta=1/seed=0/ (result.json, metrics.csv, latent.png, run.log)"

test: venv docs
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q

# The documentation site (mkdocs.yml, docs/) into build/site/. --strict turns mkdocs's warnings into
# errors: a broken link between pages, a missing anchor, a figure that is not there, a page left out
# of nav. NO_MKDOCS_2_WARNING silences a banner about MkDocs 2.0 (pinned below 2 in pyproject.toml).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir build/site

# Architecture contracts (pyproject's [tool.importlinter]) and ruff's lint and format checks.
lint: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check src tests scripts
	$(VENV)/bin/ruff format --check src tests scripts

# A fixed catalogue of plausible bugs (scripts/mutants.toml), one at a time, against the relevant tests
# (scripts/mutation.py, two mutants at once; about an hour on 2 cores for all 139; writes
# results/mutation/report.md; `scripts/mutation.py --check` in a second, `--module tasks/` for a part).
mutation: venv
	$(PY) scripts/mutation.py --jobs 2

test-slow: venv  # 38 long tests (statistical, compile, kill/resume variants), about 15 minutes on 2 busy cores
	$(PY) -m pytest -q -m slow

# Sweeps through hydra/launcher=slurm on a one-node SLURM cluster that scripts/local_slurm.sh starts
# and stops (as root it installs slurm-wlm, munge, slurmdbd, mariadb-server; skips where it cannot):
# one job array, a time limit with requeue, scancel and re-submit, a node failure; about 8 minutes.
test-slurm: venv
	$(PY) -m pytest -q -rs -m slurm

bench: venv
	$(PY) scripts/bench_distributions.py

clean:
	rm -rf build dist src/*.egg-info .pytest_cache
