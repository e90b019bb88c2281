"""Shared test helpers: real processes on free loopback ports."""
