"""The server wiring: what `twistd vinom` builds and only it starts.

`tap` is the plugin's `makeService`; `options` its command line; `roles`
the small builders of each role's services (lobby, game host, shared state,
web, operations); and beside them what those services need: start-up checks
and announcement (`startup`), the TLS certificate (`certs`), log format and
access log (`logs`), the drain sequence (`drain`), the status document
(`status`), the operations endpoints and dashboard (`ops`), the web client
server (`web`) and what this build is (`build`). Nothing below imports it.
"""
