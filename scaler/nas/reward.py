"""MnasNet's reward (Tan et al. 2019, eq. 2): ACC(m) x [MACs(m) / T]^w.

Soft form: w = -0.07 on both sides of the target T (the paper's alpha = beta = -0.07; EfficientNet-B0
came from it with T = 400M). Hard form: w = 0 at or below T and -1 above, a constraint rather than
a trade-off (the paper's alpha = 0, beta = -1).
"""

from __future__ import annotations

SOFT_W = -0.07
FORMS = ("soft", "hard")


def reward(accuracy: float, macs: float, target: float, w: float = SOFT_W, form: str = "soft") -> float:
    if form == "hard":
        w = 0.0 if macs <= target else -1.0
    return accuracy * (macs / target) ** w
