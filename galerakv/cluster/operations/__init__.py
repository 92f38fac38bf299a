"""The operator's verbs, written once against a Transport: up, down and status
(``lifecycle``), recover, rolling restart, add and remove node, verify, sql."""
