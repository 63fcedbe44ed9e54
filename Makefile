# Two commands: `make demo` (set up if needed, then run the main job) and
# `make test` (set up if needed, then run the test suite). `make test-fast`
# runs the tests not marked slow (see setup.cfg), in under 3 minutes.
VENV := .venv
PYTHON := $(VENV)/bin/python
# Written by tools/setup_env.sh only after every set-up step succeeded.
SETUP_DONE := $(VENV)/.setup-complete

.PHONY: demo test test-fast setup

demo: $(SETUP_DONE)
	$(PYTHON) tools/end_to_end_demo.py

test: $(SETUP_DONE)
	$(PYTHON) -m pytest tests

test-fast: $(SETUP_DONE)
	$(PYTHON) -m pytest tests -m "not slow"

# Re-run the set-up by hand (finished steps and the cached mmcv wheel are reused).
setup:
	bash tools/setup_env.sh

$(SETUP_DONE): tools/setup_env.sh setup.py pyproject.toml runtime/pyproject.toml requirements/openmmlab.txt requirements/deploy.txt requirements/tests.txt
	bash tools/setup_env.sh
