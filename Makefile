# The two quick-start commands: `make demo` (set up, then transcribe the bundled sample) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

# Pinned dependencies first; then openai-whisper without its own dependency list, which would pull triton (a GPU
# compiler of about 1 GB that a CPU install never uses). torch==2.13.0 resolves to the CPU wheel on these machines.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps openai-whisper==20250625
	$(PIP) install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/tantra transcribe samples/arctic_a0007.wav

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/tantra bench transcribe

clean:
	rm -rf $(VENV) build *.egg-info
