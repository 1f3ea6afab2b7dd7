"""Sentiment lexicons: VADER, the lab's steering signal, and TextBlob's, its second judge.

VADER (Hutto & Gilbert 2014, "VADER: A Parsimonious Rule-based Model for Sentiment Analysis
of Social Media Text", ICWSM) scores a text from a hand-made lexicon of ~7,500 words and a
few rules (negation, "but", capitals, exclamation marks, degree words), giving a
*compound* score in [-1, 1]. It labels the discriminator's training sentences
(`labkit.tasks.sentiment_data`, notebook 06) and is the reward of notebook 04, so a method
of the lab may have been steered by it:

* `sentiment(text)` -- the compound score;
* `lexicon_label(text, margin)` -- 1 positive, 0 negative, None neutral (VADER's
  conventional threshold: |compound| < 0.05 is neutral);
* `lexicon_positive(texts)` -- the share of texts judged positive.

A method steered by VADER is judged by another lexicon (notebook 07's scoreboard), else the
score would reward the method for fooling its own judge: TextBlob's (Loria, textblob 0.19+,
its `PatternAnalyzer`: the ~2,900 adjectives of De Smedt & Daelemans 2012, "Pattern for
Python", JMLR 13, with their rules for negation and intensifiers), an independent lexicon:

* `polarity(text)` -- TextBlob's polarity in [-1, 1] (0: no sentiment word);
* `polarity_positive(texts)` -- the share of texts with polarity > 0.

Left out on purpose: VADER's separate positive/negative/neutral proportions, TextBlob's
subjectivity, and its naive Bayes analyzer (it needs NLTK corpora downloaded).
"""
from __future__ import annotations

_VADER = None
_BLOB = None


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


def polarity(text: str) -> float:
    """TextBlob's polarity of `text`, in [-1, 1]: 0 when it has no sentiment word (needs
    `textblob`)."""
    global _BLOB
    if not isinstance(text, str):
        raise TypeError(f"polarity() scores a string, not {type(text).__name__}")
    if _BLOB is None:
        try:
            from textblob.en.sentiments import PatternAnalyzer
        except ImportError as e:
            raise ImportError("the second sentiment lexicon needs `pip install textblob`") from e
        _BLOB = PatternAnalyzer()
    return float(_BLOB.analyze(text).polarity)


def polarity_positive(texts) -> float:
    """Share of `texts` with TextBlob polarity > 0 (NaN for no texts)."""
    texts = list(texts)
    if not texts:
        return float("nan")
    return sum(polarity(t) > 0 for t in texts) / len(texts)
