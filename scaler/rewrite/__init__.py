"""Scaling a network the tool did not write: its width and depth rewritten in the built module.

:mod:`~scaler.rewrite.probe` runs the network once to see the shapes that flow through it;
:mod:`~scaler.rewrite.depth` finds its stages and grows or shrinks them;
:mod:`~scaler.rewrite.width` resizes every convolution, linear and normalization layer;
:mod:`~scaler.rewrite.layers` knows how each layer is resized and initialised. Depth is rewritten
first (copies of blocks are then widened with the rest). Nothing here knows about baselines.
"""

from scaler.rewrite.depth import FoundStage, find_stages, scale_depth
from scaler.rewrite.probe import Probe, probe
from scaler.rewrite.width import scale_width

__all__ = ["FoundStage", "Probe", "find_stages", "probe", "scale_depth", "scale_width"]
