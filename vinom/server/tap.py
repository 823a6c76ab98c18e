"""`twistd vinom`: the plugin's options and its service tree, as in twisted.names.tap.

`makeService` builds a `MultiService` from the role builders of
vinom.server.roles, in start order, for the role the command line names (its
subcommand, the installed fleet's: `twistd vinom lobby`, `host`, `gateway`,
`relay`; none: the whole server in one process); the options are
vinom.server.options. A role the fleet runs alone (a gateway, a relay) is the
fleet's service (vinom.server.fleet). A reactor can be injected for tests.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.python import usage

from vinom.net.reactor import install as install_reactor
from vinom.net.reactor import settle_garbage_collection
from vinom.server import roles
from vinom.server.accounts import build_accounts
from vinom.server.fleet import find_fleet
from vinom.server.options import Options, role_options

__all__ = ["Options", "makeService"]


def makeService(options: usage.Options, reactor: Any = None) -> service.MultiService:
    """The whole server, or the role its subcommand names (docs/scaling.md).

    `reactor` defaults to the global one; under it (twistd) a Redis that does
    not answer ends the start in one line, and SIGTERM and SIGINT drain the
    server before it stops (vinom.server.drain), and once the reactor runs the
    garbage collector is settled for a long-running process
    (`vinom.net.reactor.settle_garbage_collection`).
    """
    under_twistd = reactor is None
    if reactor is None:
        # twistd has not imported a reactor unless --reactor chose one (vinom.net.reactor).
        reactor = install_reactor()
    fleet = find_fleet()
    options = role_options(options)
    if fleet is not None:
        # A role the fleet runs alone (a gateway, a relay) is its own service.
        alone = fleet.make_service(options, reactor, under_twistd)
        if alone is not None:
            return alone
    root = roles.root_service(options)
    protocol = roles.protocol_config(options)
    certificate = roles.certificate_of(options)
    shared = roles.build_shared(options, reactor, root, check=under_twistd)
    # The lobby's account database (none with --redis and no --database), migrated
    # before the reactor runs under twistd (vinom.server.accounts): the lobby signs
    # players in, rates ranked matches and serves leaderboards from it.
    accounts = build_accounts(options, reactor, root, check=under_twistd)
    hosted = roles.build_hosting(options, reactor, root, shared, protocol, check=under_twistd)
    lobbies = roles.build_lobby(options, reactor, root, shared, hosted, protocol, certificate,
                                accounts)
    drain = roles.build_drain(options, reactor, root, lobbies, hosted, install=under_twistd)
    web = roles.build_web(options, reactor, root, lobbies, hosted, protocol, certificate)
    ops = roles.build_ops(options, reactor, root, shared, lobbies, hosted, web, drain)
    roles.add_last(root, hosted)
    roles.announce(options, root, hosted, lobbies, web,
                   (*lobbies.addresses, *web.addresses, *ops))  # fmt: skip
    if under_twistd:
        reactor.callWhenRunning(settle_garbage_collection)
    return root
