"""Tests of vinom.protocol: tokens, cookies, sessions, reliability, the test vectors."""
