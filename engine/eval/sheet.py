"""Contact sheet of a dub: original / dubbed / ground truth / difference rows for a few frames,
and the mouth-opening curves underneath (drawn with PIL; no plotting library needed).

The difference row is |dub − original| in display sRGB, amplified ×4 so that faint changes
(and any change outside the mouth, which should not exist) are visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

THUMB_HEIGHT = 160
LABEL_WIDTH = 90
PLOT_HEIGHT = 180
DIFF_GAIN = 4.0
CURVE_COLOURS = {"source": (120, 120, 120), "dub": (220, 60, 40), "truth": (40, 120, 220)}


def _thumb(rgb01: np.ndarray, height: int):
    from PIL import Image

    img = Image.fromarray(np.clip(np.round(rgb01 * 255), 0, 255).astype(np.uint8))
    w = max(1, round(img.width * height / img.height))
    return img.resize((w, height), Image.Resampling.BILINEAR)


def pick_frames(count: int, wanted: int = 6) -> list[int]:
    """`wanted` clip positions spread evenly over `count` frames."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, wanted)})


def contact_sheet(
    path: str | Path,
    source: str | Path,
    dub: str | Path,
    report: dict,
    truth: str | Path | None = None,
    columns: int = 6,
    colorspace: str | None = None,
) -> Path:
    """Write the sheet PNG for a report made by `evaluate_dub` on the same folders."""
    from PIL import Image, ImageDraw

    from engine.eval.clip import paired_numbers, read_clip

    numbers = paired_numbers(source, dub)
    picks = pick_frames(len(numbers), columns)
    chosen = [numbers[i] for i in picks]
    rows = [
        ("original", read_clip(source, chosen, colorspace)),
        ("dubbed", read_clip(dub, chosen, colorspace)),
    ]
    if truth is not None:
        rows.append(("truth", read_clip(truth, chosen, colorspace)))
    src, out = rows[0][1], rows[1][1]
    diff = [np.clip(np.abs(out.rgb[i] - src.rgb[i]) * DIFF_GAIN, 0, 1) for i in range(len(chosen))]

    thumbs = [[_thumb(c.rgb[i], THUMB_HEIGHT) for i in range(len(chosen))] for _, c in rows]
    thumbs.append([_thumb(d, THUMB_HEIGHT) for d in diff])
    labels = [name for name, _ in rows] + [f"|diff| x{DIFF_GAIN:g}"]
    tw = thumbs[0][0].width
    width = LABEL_WIDTH + tw * len(chosen)
    height = (THUMB_HEIGHT + 4) * len(thumbs) + 16 + PLOT_HEIGHT + 24
    sheet = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for r, (label, row) in enumerate(zip(labels, thumbs, strict=True)):
        y = r * (THUMB_HEIGHT + 4) + 16
        draw.text((6, y + THUMB_HEIGHT // 2), label, fill=(230, 230, 230))
        for c, img in enumerate(row):
            sheet.paste(img, (LABEL_WIDTH + c * tw, y))
    for c, n in enumerate(chosen):
        draw.text((LABEL_WIDTH + c * tw + 4, 2), f"frame {n}", fill=(200, 200, 200))

    top = (THUMB_HEIGHT + 4) * len(thumbs) + 24
    _plot(draw, (LABEL_WIDTH, top, width - 10, top + PLOT_HEIGHT), report, picks)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path


def _plot(draw, box: tuple[int, int, int, int], report: dict, picks: list[int]) -> None:
    x0, y0, x1, y1 = box
    curves = {k: np.asarray(v, float) for k, v in report.get("mouth_opening", {}).items()}
    draw.rectangle(box, outline=(160, 160, 160))
    draw.text((6, y0 + 4), "mouth\nopening", fill=(230, 230, 230))
    if not curves:
        return
    n = max(len(v) for v in curves.values())
    top = max(0.05, max(float(np.nanmax(v)) for v in curves.values()) * 1.1)

    def xy(t: float, v: float) -> tuple[float, float]:
        return (x0 + (x1 - x0) * t / max(n - 1, 1), y1 - (y1 - y0) * min(v, top) / top)

    for t in picks:
        draw.line([xy(t, 0), xy(t, top)], fill=(70, 70, 70))
    for k, (name, v) in enumerate(curves.items()):
        colour = CURVE_COLOURS.get(name, (200, 200, 60))
        draw.line([xy(t, float(val)) for t, val in enumerate(v)], fill=colour, width=2)
        draw.text((x0 + 6 + 70 * k, y0 + 4), name, fill=colour)
    sync_truth = report.get("sync_truth")
    if sync_truth:
        draw.text(
            (x0 + 6, y1 + 4),
            f"sync vs truth r={sync_truth['corr']:.3f} (best {sync_truth['best_corr']:.3f} "
            f"at lag {sync_truth['best_lag']})   ID-P={report.get('id_p', float('nan')):.4f}",
            fill=(230, 230, 230),
        )
