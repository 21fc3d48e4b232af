# The two quick-start commands: `make demo` (set up, then answer the bundled recording aloud) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet
STAMP := $(VENV)/.installed

.PHONY: setup demo test fast bench clean

# Debian packages: espeak-ng (the smallest voice), PortAudio (playback) and PulseAudio with its ALSA plugin (null sinks:
# the sound card of the voice loop's device tests, tests/pulse_audio.py). Installed when apt-get can run here (root, or
# sudo without a password); otherwise a note, those backends report themselves missing and the device tests skip.
# tmux drives the REPL's voice test as a person would type; gcc builds SpikingBrain's decoding kernel (core/models/native.py).
DEBS := espeak-ng libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins tmux gcc
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || (sudo -n true 2>/dev/null && echo "sudo apt-get"))

# Pinned dependencies next; then openai-whisper without its own dependency list, which would pull triton (a GPU
# compiler of about 1 GB that a CPU install never uses). torch==2.13.0 resolves to the CPU wheel on these machines.
$(STAMP): pyproject.toml requirements.lock
	@missing="$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done)"; \
	if [ -n "$$missing" ] && [ -n "$(APT)" ]; then \
		$(APT) install -y -q $$missing >/dev/null 2>&1 || { $(APT) update -q >/dev/null 2>&1; \
		$(APT) install -y -q $$missing >/dev/null 2>&1; } || echo "note: apt-get could not install $$missing"; \
	elif [ -n "$$missing" ]; then echo "note: $$missing not installed (needs root): no espeak-ng voice or playback"; fi
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.lock
	$(PIP) install --no-deps openai-whisper==20250625
	$(PIP) install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/tantra chat --mic-file samples/arctic_a0007.wav --speaker-file reply.wav

test: setup
	$(BIN)/python -m pytest

# The fast lane: fake backends, no weights. Three workers on two cores: a third of its time is the voice loop's tests
# waiting on their stand-in sound card's clock, which another worker's tests fill. They take one test at a time, and
# one of them all the tests that import torch (tests/conftest.py: pytest_xdist_make_scheduler).
fast: setup
	$(BIN)/python -m pytest -m "not slow" -n 3

bench: setup
	$(BIN)/tantra bench transcribe

clean:
	rm -rf $(VENV) build *.egg-info
