"""Images for the vision tasks, rendered deterministically from a spec string (no files needed upstream):

    digits:<i>          scikit-learn's bundled `load_digits` image i (8x8, 16 grey levels) upscaled to 56x56 RGB
    text:<lang>:<str>   the string rendered black on white (DejaVu Sans for en, WenQuanYi Micro Hei for zh)

The spec travels in a text record's `extra["image"]`; the synthesize step renders it to `images/<id>.png`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = {
    "en": "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "zh": "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
}


@lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    """(images [1797, 8, 8] in 0..16, labels [1797])."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def render(spec: str) -> Image.Image:
    kind, _, rest = spec.partition(":")
    if kind == "digits":
        images, _ = digits()
        grey = (255 - images[int(rest)] * 255 / 16).astype(np.uint8)  # dark digit on white
        return Image.fromarray(grey).resize((56, 56), Image.Resampling.NEAREST).convert("RGB")
    if kind == "text":
        lang, _, text = rest.partition(":")
        try:
            font = ImageFont.truetype(FONTS[lang], 28)
        except OSError as exc:
            raise FileNotFoundError(
                f"font for {lang} missing ({FONTS[lang]}): install fonts-dejavu-core / fonts-wqy-microhei (make setup)"
            ) from exc
        width = max(112, int(font.getlength(text)) + 16)
        width += (-width) % 28  # Qwen2.5-VL sides are multiples of 28
        img = Image.new("RGB", (width, 56), "white")
        ImageDraw.Draw(img).text((8, 10), text, fill="black", font=font)
        return img
    raise ValueError(f"unknown image spec {spec!r}; expected digits:<i> or text:<lang>:<string>")
