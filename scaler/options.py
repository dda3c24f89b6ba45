"""The choices and defaults the command line offers, in a module that imports nothing heavy.

A command builds its parser from this module and other light ones (``scaler.recipe``,
``scaler.scaling``, ``scaler.local_workers``, ``scaler.nas.reward``), and imports torch, Optuna and pandas only when it
runs: ``scaler search --help`` and argparse's own errors answer at once instead of after the
seconds torch takes to load, and ``scaler worker`` sets OpenMP's wait policy before torch reads it
(:func:`scaler.cli.shares_the_machine`). The modules that act on a choice import it from here;
tests/test_cli.py checks that no parser loads torch.
"""

from __future__ import annotations

# --- data (scaler.data) --------------------------------------------------------------------------
DEFAULT_SOURCE = "animals"
DEFAULT_CLASSES = 10  # DEFAULT_SOURCE's classes: what `scaler grid` costs a proxy's classifier with (tests/test_data.py)

# --- the grid (scaler.search_space) --------------------------------------------------------------
FILTERS = ("measured", "nominal")

# --- the study and who runs it (scaler.study, scaler.stage_runner) -------------------------------
PRUNERS = ("none", "median", "hyperband")
BACKENDS = ("optuna", "ray")
HEARTBEAT = 10  # seconds between a running trial's heartbeats (scaler.run_queue)
GRACE_FACTOR = 6  # a run whose worker missed this many heartbeats is reclaimed

# --- the stages (scaler.stages; the screen's seeds: scaler.search) -------------------------------
DEFAULT_CONFIRM = 1  # top K of the screen, then the dimension leaders: 1 confirms the best point of each dimension
CONFIRM_FACTORS = {"2x": 2.0, "3x": 3.0, "4x": 4.0}  # --confirm-preset: the screen's epochs times this
DEFAULT_CONFIRM_PRESET = "2x"
# The confirm stage's recipe by the screen's preset, where it differs from the default: a GPU affords
# a longer one, nearer the long training whose ranking the answer stands for (docs/fidelity.md).
DEFAULT_CONFIRM_PRESETS = {"gpu": "4x"}
CURVES = ("best", "all", "none")  # --curves: which single dimensions are drawn beside the chosen point
# Seeds per grid point in the screen when --seeds is not given, by preset (docs/design.md: "Stages").
DEFAULT_SEEDS = {"smoke": 1, "default": 2, "gpu": 2}


def default_confirm_preset(preset: str) -> str:
    """``--confirm-preset`` when it is not given: by the screen's ``--preset``."""
    return DEFAULT_CONFIRM_PRESETS.get(preset, DEFAULT_CONFIRM_PRESET)


# --- architecture search (scaler.nas.run) --------------------------------------------------------
OBJECTIVES = ("reward", "pareto")
PARETO_COSTS = ("macs", "latency")
