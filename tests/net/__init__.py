"""Tests of vinom.net: token buckets, limits and wake-ups."""
