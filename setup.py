"""Packaging for vinom, a Twisted framework for real-time multiplayer game servers."""

from pathlib import Path

from setuptools import Extension, find_packages, setup

# AES-GCM with the key schedule kept (see vinom/protocol/_aesgcm.c): built where
# a C compiler and OpenSSL's headers are found; without them the build goes on
# and vinom.protocol.crypto uses cryptography's AESGCM instead.
aesgcm = Extension(
    "vinom.protocol._aesgcm",
    sources=["vinom/protocol/_aesgcm.c"],
    libraries=["crypto"],
    optional=True,
)

setup(
    name="vinom",
    version="0.1.0",
    description="A Twisted framework for real-time multiplayer game servers",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins is a namespace for plugin files (no __init__.py of ours).
    packages=[*find_packages(include=["vinom", "vinom.*"]), "twisted.plugins"],
    package_data={"vinom": ["py.typed"], "vinom.protocol": ["_aesgcm.pyi"]},
    ext_modules=[aesgcm],
    install_requires=[
        # The reactor, protocols, twistd and the plugin system; the tls extra
        # pulls in pyOpenSSL, service-identity and idna for the TLS lobby.
        "twisted[tls]>=24.3",
        # TLS lobby: certificate handling and hostname verification by clients.
        "pyopenssl>=24.0",
        "service-identity>=24.1",
        # Immutable values, events, configuration and game state.
        "attrs>=23.2",
        # Plugin seams (games, stores, matchmakers, game hosts).
        "zope.interface>=6.0",
        # AEAD for connect tokens and session packets; X.509 for the dev certificate.
        "cryptography>=42",
        # Compact binary encoding of message bodies on the UDP channels.
        "msgpack>=1.0",
        # Redis session store and distributed matchmaking behind the same interfaces.
        "txredisapi>=1.4.10",
        # Benchmarks: latency histograms and CPU/RSS figures of server and load processes.
        "hdrhistogram>=0.10",
        "psutil>=5.9",
    ],
    entry_points={"console_scripts": ["vinom = vinom.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: Games/Entertainment",
    ],
)
