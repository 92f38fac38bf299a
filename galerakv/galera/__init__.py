"""What galerakv knows about Galera, as pure values and decisions (no I/O).

Shared by the server (``galerakv.backend``) and the toolkit
(``galerakv.cluster``); imports nothing from either.
"""
