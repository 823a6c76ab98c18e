"""vinom test suite (trial)."""

# Imported before any test module imports the benchmark harness, which then
# measures this very vinom (the installed wheel or the sources, as the run
# chose) instead of looking for an installed one (benchmarks/__init__.py).
import vinom  # noqa: F401
