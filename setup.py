"""Packaging for vinom, a Twisted framework for real-time multiplayer game servers."""

import os
from pathlib import Path

from setuptools import Distribution, Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# The game host's per-packet and per-snapshot path, compiled to C with mypyc from these
# very sources where it can be (docs/architecture.md, "Choices"): the same code,
# checked by the same tests (tox runs the suite on both builds).
COMPILED = [
    "vinom/protocol/replay.py",
    "vinom/protocol/reliability.py",
    "vinom/protocol/reliability_wire.py",
    "vinom/protocol/reliability_acks.py",
    "vinom/protocol/reliability_send.py",
    "vinom/protocol/reliability_receive.py",
    "vinom/protocol/layer.py",
    "vinom/protocol/server.py",
    "vinom/protocol/server_session.py",
    "vinom/protocol/server_ciphers.py",
    "vinom/protocol/server_timers.py",
    "vinom/protocol/spent_tokens.py",
    "vinom/hosting/udp.py",
    "vinom/hosting/datagrams.py",
    "vinom/rooms/delta_wire.py",
    "vinom/rooms/schema.py",
    "vinom/rooms/schema_frames.py",
    "vinom/games/interest.py",
]


class BuildExt(build_ext):
    """build_ext that adds the mypyc-compiled modules, all or none, or else stays pure Python.

    Nothing is compiled for editable or in-place installs (a compiled module in
    the checkout would shadow every later edit of its source) or with
    VINOM_NO_EXTENSIONS=1. No mypyc, a type error or a compiler failure leaves
    the pure-Python package, with a warning: it is the same code, slower.
    """

    def finalize_options(self) -> None:
        # Decided afresh on every pass: pip finalizes this command more than
        # once for one editable install.
        pure = os.environ.get("VINOM_NO_EXTENSIONS") or self.inplace
        pure = pure or getattr(self, "editable_mode", False)
        self.distribution.ext_modules = [] if pure else self._mypyc_extensions()
        super().finalize_options()

    def _mypyc_extensions(self) -> list[Extension]:
        try:
            from mypyc.build import mypycify

            return list(mypycify(COMPILED, opt_level="3", group_name="vinom"))
        except (Exception, SystemExit) as failure:  # mypy exits on a type error
            self.warn(f"mypyc did not compile the packet path ({failure!r}): pure Python")
            return []

    def _remove_compiled(self) -> None:
        # vinom has no extension modules but these, so every one found is stale.
        for found in Path(self.build_lib).glob("vinom*/**/*.so"):
            found.unlink()
        for found in Path(self.build_lib).glob("vinom__mypyc*"):
            found.unlink()

    def run(self) -> None:
        # An earlier build's compiled modules must not ship with this one.
        self._remove_compiled()
        try:
            super().run()
        except Exception as failure:  # the C compiler failed on mypyc's output
            self.warn(f"the compiled packet path did not build ({failure!r}): pure Python")
            self._remove_compiled()


class Platform(Distribution):
    """A distribution with extension modules, so that build_ext runs and decides."""

    def has_ext_modules(self) -> bool:
        return True


setup(
    name="vinom",
    version="0.1.0",
    description="A Twisted framework for real-time multiplayer game servers",
    license="MIT",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins is a namespace for plugin files (no __init__.py of ours).
    packages=[*find_packages(include=["vinom", "vinom.*"]), "twisted.plugins"],
    # The Redis matchmaker and party store read their Lua scripts from the
    # package; the operations dashboard (vinom/server/ops.py) and the web client
    # (vinom/server/web.py) serve their files as they are: no build step.
    package_data={
        "vinom": [
            "py.typed", "server/dashboard/*.html", "server/dashboard/*.css",
            "server/dashboard/*.js",
            "webclient/*.html", "webclient/*.css", "webclient/*.js", "webclient/boards/*.js",
            "webclient/boards/*.css",
            # The web client as a package of its own (@vinom/client, docs/web.md).
            "webclient/package.json", "webclient/index.d.ts", "webclient/README.md",
            "webclient/LICENSE",
            # The MessagePack library it loads, vendored (scripts/vendor-msgpack).
            "webclient/vendor/msgpack/*.mjs", "webclient/vendor/msgpack/utils/*.mjs",
            "webclient/vendor/msgpack/LICENSE", "webclient/vendor/msgpack/VERSION",
            # `vinom new-game`'s package template (vinom/scaffold.py).
            "scaffold_template/*.tmpl", "scaffold_template/*/*.tmpl",
            "scaffold_template/*/*/*.tmpl",
        ],
        "vinom.cluster": ["*.lua"],
    },
    cmdclass={"build_ext": BuildExt},
    distclass=Platform,
    install_requires=[
        # The reactor, protocols, twistd and the plugin system; the tls extra
        # pulls in pyOpenSSL, service-identity and idna for the TLS lobby. 24.7 is
        # the first with the fix for HTTP pipelining (GHSA-c8m8-j448-xjx7).
        "twisted[tls]>=24.7",
        # TLS lobby: certificate handling and hostname verification by clients.
        "pyopenssl>=24.0",
        "service-identity>=24.1",
        # Immutable values, events, configuration and game state.
        "attrs>=23.2",
        # Plugin seams (games, stores, matchmakers, game hosts).
        "zope.interface>=6.0",
        # AEAD (AESGCM) for connect tokens and session packets; X.509 for the dev
        # certificate. 42.0.4 is past the advisories of 42.0.0-42.0.3 (CVE-2024-26130).
        "cryptography>=42.0.4",
        # Compact binary encoding of message bodies on the UDP channels.
        "msgpack>=1.0",
        # The operations endpoint's /metrics, in the Prometheus text format.
        "prometheus_client>=0.17",
        # Ratings the server computes after ranked matches (Plackett-Luce, vinom.accounts.ratings).
        "openskill>=6.0",
        # Player authentication (--auth jwt, signed): JWT signatures, issuers, audiences,
        # JWKS keys; the crypto extra is `cryptography`, already required above.
        "PyJWT[crypto]>=2.8",
    ],
    # What only one kind of deployment uses, asked for by name (docs/operations.md,
    # "Installing"): `pip install vinom` is the whole server in one process. The option
    # that needs one and finds it missing says which, in one line (vinom.server.checks,
    # needs_extra).
    extras_require={
        # The Redis wing (`--redis`: lobbies and game hosts in several processes,
        # docs/scaling.md). 1.6 for its pool's startConnecting(endpoint), which Redis
        # Sentinel goes through; hiredis is Redis's own reply parser in C, which
        # txredisapi uses when it is installed (its pure-Python parser was a fifth of a
        # lobby's CPU on Redis, docs/performance.md).
        "cluster": ["txredisapi>=1.6.0", "hiredis>=3.0"],
        # The account store on PostgreSQL (`--database postgresql://...`, every lobby of a
        # cluster sharing it): psycopg 3 through twisted.enterprise.adbapi. The binary
        # wheel brings its own libpq; psycopg's maintainers advise libraries not to require
        # it, so it is the operator's choice here (psycopg alone uses the system's libpq).
        "postgres": ["psycopg[binary]>=3.1"],
        # Game sessions over WebTransport (`--webtransport`: HTTP/3, QUIC datagrams) for
        # browsers: a sans-I/O QUIC and HTTP/3 stack, driven from the reactor
        # (vinom.hosting.webtransport). qh3 is aioquic with its packet protection, TLS and
        # buffers compiled (0.52-0.60x aioquic's CPU per move at 100 rooms); vinom extends
        # its 1.x connection for the receive budget, which 2.x moved into native code (and
        # every 2.x release refuses Chromium's handshake: benchmarks/README.md, "play").
        "webtransport": ["qh3>=1.9.4,<2"],
        # A game's own board module parsed at start, so that a syntax error in it is one
        # line in the server's log rather than a board its players never get
        # (vinom.server.web.syntax_error): tree-sitter and its JavaScript grammar, 2.7 MB
        # for a game developer's check (without them, one info line says it is off).
        "boards": ["tree-sitter>=0.23", "tree-sitter-javascript>=0.23"],
    },
    entry_points={"console_scripts": ["vinom = vinom.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Games/Entertainment",
    ],
)
