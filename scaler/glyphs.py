"""Navon glyphs: a large letter drawn out of small letters, generated at any size from a seed.

Reading the small letters needs resolution; seeing the large one needs a receptive field that
covers the image; telling many classes apart needs width. So, unlike 28-px data, this data can
reward all three dimensions a compound-scaling search varies (docs/data.md, "glyphs").

Each letter is drawn once per font with matplotlib's bundled DejaVu fonts (FreeType, antialiased)
and scaled to its cell; the images are composed with tensor operations, a batch at a time. A
large letter is its glyph sampled on a grid of cells (a cell is "on" where the glyph has ink);
every on-cell holds a small letter. Nuisances, drawn per image: the font of the small letters
(four faces), their offset inside their cells, the grid size, a rotation, scale and shift of the
whole figure, ink and background levels, a background gradient, distractor marks in the
off-cells and pixel noise. No files are written; the output depends only on the options, the seed
and the FreeType that matplotlib ships (the fingerprint records the pixels).

``focus`` chooses what the label is:

- ``both`` (the default): the (large letter, small letter) pair — global shape and fine detail.
- ``resolution``: the small letter only, drawn small (the information is only in fine detail).
- ``depth``: the large letter only; the small letters are mixed at random, so no cell tells it
  (the class is a relation across the whole image).
- ``width``: the small letter among many classes (local patterns), drawn large enough to read.
- ``hard``: the pair again, over ten look-alike small letters (50 classes): with ``both``'s 20 a
  32-epoch proxy reads nearly every image (99.70-99.98% on the 2x grid), so its points cannot be told apart; this
  one leaves headroom (docs/data.md, "glyphs").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Bump when a change to this module changes the pixels for the same options and seed.
GENERATOR_VERSION = 1

FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
LARGE_FONT = "DejaVuSans-Bold.ttf"  # thick strokes survive sampling onto a coarse grid
DISTRACTORS = "+=~%#"  # marks drawn faintly in off-cells: clutter that is no class's letter


@dataclass(frozen=True)
class Focus:
    """What one ``focus`` makes the label, and at what sizes it draws."""

    large: str  # the large letters drawn
    small: str  # the small letters drawn
    label: str  # "pair", "large" or "small"
    grids: tuple[int, ...]  # cells per side of the large letter (drawn at random per image)
    mixed: bool = False  # each cell a random small letter (the small letters then carry no label)
    # The whole figure's nuisances, drawn uniformly per image: rotation within +-rotation radians,
    # scale within ``scale``, shift within +-shift of the side; and the share of the large letter's
    # cells left empty / of its empty cells filled (``cell_noise``). benchmarks/depth_control.py
    # varies them; the foci below keep the values their pixels were made with.
    rotation: float = 0.12  # about 7 degrees
    scale: tuple[float, float] = (0.85, 1.05)
    shift: float = 0.12
    cell_noise: tuple[float, float] = (0.0, 0.0)
    # Levels, drawn per image: the ink's contrast over the background, and the pixel noise's std (at ``size``).
    contrast: tuple[float, float] = (0.45, 0.9)
    noise: float = 0.05

    def classes(self) -> list[str]:
        if self.label == "pair":
            return [f"{a}/{b}" for a in self.large for b in self.small]
        return list(self.large if self.label == "large" else self.small)


# Small letters alike in outline (a/e/o/s, n/u, ...): they differ only in detail a few pixels wide.
FOCI = {
    "both": Focus(large="CEHLT", small="aesx", label="pair", grids=(7, 8)),
    "resolution": Focus(large="EHLT", small="acemnorsuz", label="small", grids=(8, 9)),
    "depth": Focus(large="CEFHLOPTUZ", small="aesx", label="large", grids=(6, 7), mixed=True),
    "width": Focus(large="EHLT", small="ABDEFGHKMNPRSTUVXYZ23456789", label="small", grids=(4, 5)),
    "hard": Focus(large="CEHLT", small="acemnorsuz", label="pair", grids=(8, 9)),
}


@functools.lru_cache(maxsize=64)
def glyph_bitmaps(chars: str, px: int, font: str = LARGE_FONT) -> np.ndarray:
    """Each of ``chars`` drawn in ``font`` and fitted, centred, into a ``px`` x ``px`` square: float32 (n, px, px) in [0, 1].

    Drawn once at 96 pt by FreeType, cropped to its ink, padded square and area-averaged down, so
    every letter fills its square alike whatever its size in the font (no size shortcut).
    """
    import matplotlib
    from matplotlib.ft2font import FT2Font, LoadFlags

    face = FT2Font(f"{matplotlib.get_data_path()}/fonts/ttf/{font}")
    face.set_size(96, 72)
    out = np.zeros((len(chars), px, px), dtype=np.float32)
    for i, ch in enumerate(chars):
        face.set_text(ch, 0.0, flags=LoadFlags.NO_HINTING)
        face.draw_glyphs_to_bitmap(antialiased=True)
        ink = np.asarray(face.get_image(), dtype=np.float32) / 255
        rows, cols = np.nonzero(ink > 0.05)
        ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        side = max(ink.shape)
        square = np.zeros((side, side), dtype=np.float32)
        top, left = (side - ink.shape[0]) // 2, (side - ink.shape[1]) // 2
        square[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
        out[i] = F.interpolate(torch.from_numpy(square)[None, None], size=(px, px), mode="area")[0, 0].numpy()
    return out


def render_glyphs(size: int, n: int, focus: str = "both", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` grey Navon images of ``size`` px: (uint8 (n, 1, size, size), int64 labels, class names).

    Labels are balanced (``i % classes``, shuffled). Deterministic in (``size``, ``n``, ``focus``, ``seed``).
    """
    spec = FOCI[focus]
    rng = np.random.default_rng(seed)
    labels, large_idx, small_idx = draw_letters(spec, n, rng)
    grid = rng.choice(spec.grids, n)
    out = torch.empty((n, 1, size, size), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(seed)
    for g in spec.grids:  # one grid size at a time: its cells have one size
        where = np.flatnonzero(grid == g)
        for start in range(0, len(where), 1024):
            idx = where[start : start + 1024]
            out[idx] = _compose(spec, g, size, large_idx[idx], small_idx[idx], rng, gen)
    return out, torch.from_numpy(labels.astype(np.int64)), spec.classes()


def draw_letters(spec: Focus, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced labels (``i % classes``, shuffled) and the (large, small) letter each image draws.

    The letter that is not the label is drawn at random, independently of it (``mixed`` focus draws
    the small letters per cell later).
    """
    labels = np.arange(n) % len(spec.classes())
    rng.shuffle(labels)
    if spec.label == "pair":
        return labels, labels // len(spec.small), labels % len(spec.small)
    if spec.label == "large":
        return labels, labels, rng.integers(0, len(spec.small), n)
    return labels, rng.integers(0, len(spec.large), n), labels


def _compose(spec: Focus, g: int, size: int, large: np.ndarray, small: np.ndarray, rng: np.random.Generator,
             gen: torch.Generator) -> torch.Tensor:
    """One batch of images whose large letters are ``g`` cells a side."""
    b = len(large)
    cell, pad, masks, tiles, marks = _banks(spec.large, spec.small, g, size)
    font = torch.from_numpy(rng.integers(0, len(FONTS), (b, 1, 1))).expand(b, g, g)
    on = masks[torch.from_numpy(large)]  # (b, g, g)
    if any(spec.cell_noise):
        flip = torch.from_numpy(rng.random((b, g, g)))
        on = (on & (flip >= spec.cell_noise[0])) | (~on & (flip < spec.cell_noise[1]))
    if spec.mixed:
        which = torch.from_numpy(rng.integers(0, len(spec.small), (b, g, g)))
    else:
        which = torch.from_numpy(small)[:, None, None].expand(b, g, g)
    dy, dx = (torch.from_numpy(rng.integers(0, pad + 1, (b, g, g))) for _ in range(2))
    mark = torch.from_numpy(rng.integers(0, len(DISTRACTORS), (b, g, g)))
    # Off-cells: a third hold a faint distractor.
    faint = torch.from_numpy((rng.uniform(0.15, 0.4, (b, g, g)) * (rng.random((b, g, g)) < 0.35)).astype(np.float32))
    placed = torch.where(on[..., None, None], tiles[font, which, dy, dx], marks[mark, dy, dx] * faint[..., None, None])
    figure = placed.permute(0, 1, 3, 2, 4).reshape(b, 1, g * cell, g * cell)
    before, after = (size - g * cell) // 2, size - g * cell - (size - g * cell) // 2
    figure = F.pad(figure, (before, after, before, after))
    # The whole figure: rotated, scaled and shifted (an inverse affine map, output -> input).
    theta = rng.uniform(-spec.rotation, spec.rotation, b)  # radians
    scale = rng.uniform(*spec.scale, b)
    shift = rng.uniform(-spec.shift, spec.shift, (2, b))
    cos, sin = np.cos(theta) / scale, np.sin(theta) / scale
    affine = torch.from_numpy(np.stack([np.stack([cos, -sin, shift[0]], 1), np.stack([sin, cos, shift[1]], 1)], 1)).float()
    figure = F.grid_sample(figure, _sample_points(affine, size), mode="bilinear", padding_mode="zeros", align_corners=False)
    # Levels: background, ink contrast, a linear gradient, noise.
    ramp = torch.linspace(-1, 1, size)
    angle = rng.uniform(0, 2 * np.pi, b)
    gradient = (torch.from_numpy(np.cos(angle)).float()[:, None, None, None] * ramp[None, None, None, :]
                + torch.from_numpy(np.sin(angle)).float()[:, None, None, None] * ramp[None, None, :, None])
    background = torch.from_numpy(rng.uniform(0.05, 0.35, (b, 1, 1, 1))).float() + 0.08 * gradient
    contrast = torch.from_numpy(rng.uniform(*spec.contrast, (b, 1, 1, 1))).float()
    img = background + contrast * figure
    img = img + spec.noise * torch.randn(img.shape, generator=gen)
    return img.clamp_(0, 1).mul_(255).round_().to(torch.uint8)


@functools.lru_cache(maxsize=8)
def _banks(large: str, small: str, g: int, size: int) -> tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every batch of one grid size draws from, made once: the cell and its padding, the large
    letters' masks (letters, g, g), and banks of cells with every letter at every offset
    (font, letter, dy, dx, cell, cell), distractors alike."""
    cell = int(size * 0.86) // g  # the figure fills ~86% of the side before its random scale
    glyph = max(3, int(round(cell * 0.8)))  # small letters leave a margin in their cells
    pad = cell - glyph  # each small letter sits at a random offset inside its cell
    masks = torch.from_numpy(glyph_bitmaps(large, g, LARGE_FONT) > 0.3)
    tiles = _offsets(torch.from_numpy(np.stack([glyph_bitmaps(small, glyph, f) for f in FONTS])), pad)
    marks = _offsets(torch.from_numpy(glyph_bitmaps(DISTRACTORS, glyph, FONTS[0])), pad)
    return cell, pad, masks, tiles, marks


def _offsets(glyphs: torch.Tensor, pad: int) -> torch.Tensor:
    """``glyphs`` (..., k, k) placed in cells of k + pad at every offset: (..., pad + 1, pad + 1, k + pad, k + pad)."""
    k = glyphs.shape[-1]
    out = glyphs.new_zeros((*glyphs.shape[:-2], pad + 1, pad + 1, k + pad, k + pad))
    for oy in range(pad + 1):
        for ox in range(pad + 1):
            out[..., oy, ox, oy : oy + k, ox : ox + k] = glyphs
    return out


def _sample_points(affine: torch.Tensor, size: int) -> torch.Tensor:
    """``F.affine_grid(affine, (b, 1, size, size), align_corners=False)`` as one matrix product (several times faster on a CPU)."""
    ramp = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    base = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), torch.ones(size, size)], -1)
    return torch.einsum("hwk,bjk->bhwj", base, affine)
