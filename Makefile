# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PKGS := espeak-ng sox ffmpeg libsndfile1
WORLD ?= worlds/small
RUN ?= runs/small
SIZE ?= small

.PHONY: install demo test test-fast bench clean-demo lab-build lab-run lab-finetune

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@if ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null || ! command -v ffmpeg >/dev/null; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PKGS); fi
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: nothing after this may replace it.
	$(PIP) install -q -c constraints.txt torch==2.9.1 torchaudio==2.9.1
	$(PIP) install -q -c constraints.txt -e ".[dev,ray]"
	# importing tortoise.utils.audio also compiles librosa's numba kernels into their cache, once here instead of
	# in the first build or test
	$(PY) -c "import torch, torchaudio, transformers, tortoise, tortoise.utils.audio; assert torch.__version__.startswith('2.9.1'), torch.__version__"
	touch $@

demo: install lab-build lab-run lab-finetune
	@echo "World gates: $(WORLD)/world_report.json; recovery + fine-tune report: $(RUN)/report.md"

lab-build: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/tortuner lab build --size $(SIZE) --out $(WORLD)

lab-run: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/tortuner lab run --world $(WORLD) --out $(RUN)

lab-finetune: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/tortuner lab finetune --world $(WORLD) --run $(RUN)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

# while developing: without the tests marked slow (builds, whole runs, every experiment script); `make test` runs all
test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow" tests

bench: install
	HF_HUB_OFFLINE=1 $(PY) benchmarks/run_all.py

clean-demo:
	rm -rf $(WORLD) $(RUN)
