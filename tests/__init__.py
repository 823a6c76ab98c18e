"""vinom test suite (trial)."""
