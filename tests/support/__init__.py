"""Helpers shared by the test suites (real services, free ports, subprocesses)."""
