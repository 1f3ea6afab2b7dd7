"""A sentiment lexicon: VADER, the outside judge of notebook 06's attribute.

VADER (Hutto & Gilbert 2014, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis
of Social Media Text", ICWSM) scores a text from a hand-made lexicon of ~7,500 words and a
few rules (negation, "but", capitals, exclamation marks, degree words), giving a
*compound* score in [-1, 1]. It is a judge that none of the lab's controls optimises
directly: it labels the discriminator's training sentences (`labkit.tasks.sentiment_data`)
and scores the texts of the scoreboard (`labkit.metrics`).

* `sentiment(text)` -- the compound score;
* `lexicon_label(text, margin)` -- 1 positive, 0 negative, None neutral (VADER's
  conventional threshold: |compound| < 0.05 is neutral);
* `lexicon_positive(texts)` -- the share of texts judged positive.

Left out on purpose: VADER's separate positive/negative/neutral proportions, and any other
lexicon (a second one would judge a method steered by this one, notebook 07).
"""
from __future__ import annotations

_VADER = None


def sentiment(text: str) -> float:
    """VADER's compound sentiment score of `text`, in [-1, 1] (needs `vaderSentiment`)."""
    global _VADER
    if not isinstance(text, str):
        raise TypeError(f"sentiment() scores a string, not {type(text).__name__}")
    if _VADER is None:
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError as e:
            raise ImportError("the sentiment lexicon needs `pip install vaderSentiment`") from e
        _VADER = SentimentIntensityAnalyzer()
    return float(_VADER.polarity_scores(text)["compound"])


def lexicon_label(text: str, margin: float = 0.05) -> int | None:
    """1 positive, 0 negative, None neutral (|compound| < margin), by the VADER lexicon."""
    s = sentiment(text)
    return 1 if s >= margin else 0 if s <= -margin else None


def lexicon_positive(texts, margin: float = 0.05) -> float:
    """Share of `texts` the lexicon judges positive (NaN for no texts)."""
    texts = list(texts)
    if not texts:
        return float("nan")
    return sum(lexicon_label(t, margin) == 1 for t in texts) / len(texts)
