"""Programs that run on lab hosts: the socket lessons themselves, and the probe.

Standard library only and never importing the orchestrator: this package is
copied into bare containers and also runs on a student's laptop with
``python -m nodes.<program> --help``. Shared conventions live in
``nodes.cli``; the outcome vocabulary in ``nodes.outcomes``.
"""
