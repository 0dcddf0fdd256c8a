"""The one colour palette of every figure (mke_theory.results.plots, paper_figures): Okabe & Ito's.

Okabe & Ito, "Color Universal Design" (2008): eight colours that stay distinguishable with every
common colour-vision deficiency.  Figures use UM (the teacher's modality α) orange and MM (α, β)
blue; the TwoMoon classes are blue and orange too.
"""

from __future__ import annotations

from mke_theory.core.errors import MKEError

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9", "bluish_green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
GREY = "#9A9A9A"  # unlabeled points


def lighten(colour: str, amount: float = 0.7) -> str:
    """``colour`` ("#RRGGBB") blended with white: ``amount`` 0 keeps it, 1 gives white."""
    if not (isinstance(colour, str) and len(colour) == 7 and colour[0] == "#"):
        raise MKEError(f"colour must be '#RRGGBB', got {colour!r}")
    if not 0 <= amount <= 1:
        raise MKEError(f"amount must lie in [0, 1], got {amount!r}")
    channels = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(c + (255 - c) * amount):02X}" for c in channels)


MODALITY_COLOURS = {"um": OKABE_ITO["orange"], "mm": OKABE_ITO["blue"]}  # keyed like Method.modality
CLASS_COLOURS = (OKABE_ITO["blue"], OKABE_ITO["orange"])  # TwoMoon class 0, class 1
CLASS_REGIONS = tuple(lighten(c) for c in CLASS_COLOURS)  # decision regions: the class colours, ~70 % white
