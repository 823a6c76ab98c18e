"""vinom test suite (trial)."""

import os

# Imported before any test module imports the benchmark harness, which then
# measures this very vinom (the installed wheel or the sources, as the run
# chose) instead of looking for an installed one (benchmarks/__init__.py).
import vinom  # noqa: F401

# Every room the tests run checks that a game saying `shared_view = True` shows
# every seat the same view (docs/games.md, "Checking shared_view"); a game that
# does not fails its test with a logged SharedViewMismatch.
os.environ.setdefault("VINOM_CHECK_VIEWS", "1")

# Hypothesis keeps its example database and the character tables it builds for
# `st.text()` (2 s of CPU for each process that has none) under `.hypothesis` in
# the working directory, which for trial is `_trial_temp` (`_trial_temp/N` under
# -jN), emptied at every run: so each run built them again in every worker. Kept
# in the user's cache instead (outside the checkout), they are built once.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY",
    os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "vinom",
        "hypothesis",
    ),
)

# In the fast lane (tox -e fast, tests/support/lanes.py) a test that starts a child
# process fails, here in each trial worker as in the process that runs them.
if os.environ.get("VINOM_TEST_LANE") == "fast":
    from tests.support.lanes import forbid_child_processes

    forbid_child_processes()

# In the core lane (tox -e core, tests/support/lanes.py) the fleet, Redis and kubectl
# are out of reach, here in each trial worker as in the process that runs them.
if os.environ.get("VINOM_TEST_LANE") == "core":
    from tests.support.lanes import block_fleet

    block_fleet()
