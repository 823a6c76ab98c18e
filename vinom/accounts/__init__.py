"""Player identity: who a player is (authenticators) and what persists of them (accounts).

`interfaces.py` holds the two seams, `IAuthenticator` and `IAccountStore`, and
their values; docs/accounts.md describes what players and operators see.
"""
