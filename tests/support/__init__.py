"""Helpers the tests share: real servers, Redis, browsers, ports, doubles and the fast lane."""
