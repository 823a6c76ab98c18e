"""Packaging for vinom, a Twisted framework for real-time multiplayer game servers."""

import os
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

# AES-GCM with the key schedule kept (see vinom/protocol/_aesgcm.c): built where
# a C compiler and OpenSSL's headers are found; without them the build goes on
# and vinom.protocol.crypto uses cryptography's AESGCM instead.
aesgcm = Extension(
    "vinom.protocol._aesgcm",
    sources=["vinom/protocol/_aesgcm.c"],
    libraries=["crypto"],
    optional=True,
)

# The game host's per-packet path, compiled to C with mypyc from these very
# sources (docs/performance.md, "What changed in the fourth round").
COMPILED = [
    "vinom/protocol/replay.py",
    "vinom/protocol/reliability.py",
    "vinom/protocol/layer.py",
    "vinom/protocol/server.py",
    "vinom/hosting/udp.py",
]


# Module names of the compiled build: mypyc makes one per source and a shared library.
COMPILED_NAMES = [path[: -len(".py")].replace("/", ".") for path in COMPILED] + ["vinom__mypyc"]


class BuildExt(build_ext):
    """build_ext that adds the mypyc-compiled modules, all or none.

    Not for development installs (`pip install -e .`, `build_ext --inplace`): a
    compiled module in the checkout would shadow every later edit of its source.
    Not with VINOM_NO_EXTENSIONS=1 in the environment (a pure-Python build). Where
    they do not build (no compiler, no mypy in a build without isolation, a type
    error), none is kept and vinom runs its sources. Compiled files left by an
    earlier build (in build/ or in the checkout) are removed first, so that a
    failed or pure build cannot ship them.
    """

    def finalize_options(self) -> None:
        # Decided afresh on every pass: pip finalizes this command more than once
        # for one editable install (first for the sdist's file list).
        self.compiled_names: set[str] = set()
        self.built_names: set[str] = set()
        if os.environ.get("VINOM_NO_EXTENSIONS"):
            self.distribution.ext_modules = []
        elif self.inplace or getattr(self, "editable_mode", False):
            self.distribution.ext_modules = [aesgcm]
        else:
            compiled = self._mypyc_extensions()
            self.compiled_names = {extension.name for extension in compiled}
            self.distribution.ext_modules = [aesgcm, *compiled]
        super().finalize_options()

    def _mypyc_extensions(self) -> list[Extension]:
        try:
            from mypyc.build import mypycify
        except ImportError:
            self.warn("mypyc is not installed: the packet path stays pure Python")
            return []
        try:
            compiled = mypycify(COMPILED, opt_level="3", group_name="vinom")
        except (Exception, SystemExit) as failure:  # mypy exits on a type error
            self.warn(f"mypyc could not compile the packet path ({failure!r}): pure Python")
            return []
        for extension in compiled:
            extension.optional = True
        return compiled

    def _stale_outputs(self) -> list[str]:
        names = [*COMPILED_NAMES, aesgcm.name]
        files = [self.get_ext_filename(name) for name in names]
        return [os.path.join(self.build_lib, f) for f in files] + files[: len(COMPILED_NAMES)]

    def run(self) -> None:
        for path in self._stale_outputs():
            if os.path.exists(path):
                os.remove(path)
        super().run()

    def build_extension(self, ext: Extension) -> None:
        super().build_extension(ext)
        self.built_names.add(ext.name)  # not reached when it failed

    def build_extensions(self) -> None:
        super().build_extensions()
        if self.compiled_names and self.built_names & self.compiled_names != self.compiled_names:
            self.warn("some mypyc modules did not build; keeping none of them")
            for name in self.compiled_names:
                path = self.get_ext_fullpath(name)
                if os.path.exists(path):
                    os.remove(path)


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
    cmdclass={"build_ext": BuildExt},
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
