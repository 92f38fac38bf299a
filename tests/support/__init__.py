"""Helpers shared by the test suites: imported by conftest.py files and test modules alike.

conftest.py files hold only fixtures; anything two suites need (server
processes, free ports, configuration files, real local clusters, the fault
cluster's probes) lives here, so no conftest imports another.
"""
