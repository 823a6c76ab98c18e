"""Tests of vinom.server: options, the service tree, start-up, drain, the web and ops servers."""
