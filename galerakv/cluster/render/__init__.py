"""Configuration files rendered from the metadata file: deterministic text, no I/O.

``node``: each node's my.cnf and cluster.cnf; ``balancer``: haproxy.cfg,
maxscale.cnf and the health-check responder's paths.
"""
