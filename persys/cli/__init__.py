"""The ``persys`` command line: cluster commands (server, pki, …) and kubectl-style verbs."""
