"""Language identification with fastText's lid.176 model (Joulin et al. 2016).

``identify(text) -> ("en", 0.97)``: the most likely language as an ISO 639-1 code (the model's
own labels: ISO 639-1 where one exists, else 639-2/3 such as "ceb") and its probability.

- The bundled model is the compressed ``lid.176.ftz`` (917 KB, filters/models/); point
  ``model_path`` at the full ``lid.176.bin`` (126 MB, slightly more accurate) to use it.
- fastText classifies one line: newlines are replaced by spaces (its ``predict`` rejects them).
- Long documents are classified on a bounded sample: ``windows`` evenly spaced pieces of
  ``sample_chars / windows`` characters, cut at spaces, from the start to the end of the text,
  so that a long document costs a bounded time and a preamble (licence header, English
  navigation) does not decide the language of the whole page.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "lid.176.ftz")
DEFAULT_SAMPLE_CHARS = 3_000  # characters classified per document at most (fastText: ~2 MB/s)
DEFAULT_WINDOWS = 3  # pieces the sample of a long document is made of (start, middle, end)
_LABEL = "__label__"


def load_fasttext(path: str):
    """A fastText model, loaded without fastText's stderr warning about the deprecated API."""
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None
    return fasttext.load_model(path)


def sample_text(text: str, sample_chars: int = DEFAULT_SAMPLE_CHARS, windows: int = DEFAULT_WINDOWS) -> str:
    """The text fastText classifies: all of it when short, else ``windows`` evenly spaced
    pieces (each starting and ending at a space) joined; newlines become spaces."""
    if len(text) > sample_chars:
        size = sample_chars // windows
        step = (len(text) - size) / max(windows - 1, 1)
        pieces = []
        for i in range(windows):
            start = int(i * step)
            if start:
                space = text.find(" ", start, start + 100)
                start = space + 1 if space != -1 else start
            end = start + size
            space = text.rfind(" ", end - 100, end)
            pieces.append(text[start : space if space > start else end])
        text = " ".join(pieces)
    return text.replace("\n", " ").replace("\r", " ")


class LanguageIdentifier:
    """A loaded lid.176 model; create one per worker (Beam ``DoFn.setup``), not per document."""

    def __init__(
        self,
        model_path: str | None = None,
        sample_chars: int = DEFAULT_SAMPLE_CHARS,
        windows: int = DEFAULT_WINDOWS,
    ):
        self.model_path = model_path or DEFAULT_MODEL
        if not os.path.exists(self.model_path):
            raise FileNotFoundError(f"language-ID model not found: {self.model_path}")
        self.model = load_fasttext(self.model_path)
        self.sample_chars, self.windows = sample_chars, windows

    def identify(self, text: str) -> tuple[str, float]:
        """(language code, probability in [0, 1]) of the text's most likely language."""
        labels, probs = self.model.predict(sample_text(text, self.sample_chars, self.windows), k=1)
        if not labels:
            return "unknown", 0.0
        return labels[0][len(_LABEL) :], min(float(probs[0]), 1.0)

    def identify_batch(self, texts: Sequence[str]) -> list[tuple[str, float]]:
        """``identify`` for many texts in one call into fastText."""
        if not texts:
            return []
        samples = [sample_text(t, self.sample_chars, self.windows) for t in texts]
        labels, probs = self.model.predict(samples, k=1)
        return [
            (lab[0][len(_LABEL) :], min(float(p[0]), 1.0)) if len(lab) else ("unknown", 0.0)
            for lab, p in zip(labels, probs)
        ]


_DEFAULT: LanguageIdentifier | None = None


def identify(text: str) -> tuple[str, float]:
    """``(language code, probability)`` of ``text`` with the bundled model (loaded once per process)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = LanguageIdentifier()
    return _DEFAULT.identify(text)
