"""Tests of vinom.accounts: the authenticators and the account stores, each kind against one contract."""
