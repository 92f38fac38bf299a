"""``galerakv cluster``: deploy, check, diagnose and recover the Galera cluster.

``operations/`` holds the verbs, written once against a
:class:`~galerakv.cluster.transport.base.Transport` (``transport/``: local
processes, ssh hosts, an in-memory fake); ``render/`` the configuration files;
``balancer/`` HAProxy, MaxScale and the health responder; ``doctor/`` the
diagnosis; ``supervise.py`` the processes galerakv starts. The decisions
(which node bootstraps, is a node serving) are pure functions in
:mod:`galerakv.galera`. See ARCHITECTURE.md.
"""
