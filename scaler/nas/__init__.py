"""``scaler nas``: an MBConv architecture search under a MACs target, whose winner is a baseline.

:mod:`~scaler.nas.space` (the choices, as data, and the architectures they make),
:mod:`~scaler.nas.reward` (MnasNet's reward), :mod:`~scaler.nas.run` (the search: sample, cost
first, train, confirm, compare with the start), :mod:`~scaler.nas.report` (the report).
"""
