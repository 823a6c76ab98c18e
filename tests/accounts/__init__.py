"""Tests of vinom.accounts: authenticators and account stores, each kind against one contract."""
