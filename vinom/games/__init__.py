"""Games: the pluggable rules that rooms run."""
