"""Judging replies to `labkit.instruct` items: did the model answer, does it obey the
instruction, and in what style did it write."""
from __future__ import annotations

import re

# --- judging replies ---------------------------------------------------------------------------


def first_line(reply: str) -> str:
    """The part of a reply that is judged: its first line, stripped."""
    if not isinstance(reply, str):
        raise TypeError(f"a reply is a string, not {type(reply).__name__}")
    return reply.strip().split("\n")[0].strip()


def answered(reply: str) -> bool:
    """A reply at all: a first line with a letter or digit that does not start a new turn."""
    line = first_line(reply)
    return bool(re.search(r"[A-Za-z0-9]", line)) and not re.match(r"(Instruction|Response):", line)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _bare(line: str) -> str:
    return line.strip().strip("\"'").rstrip(".!").strip()


def _items(line: str) -> list[str]:
    return [x.strip() for x in _bare(line).split(",")]


_CHECKS = {  # type -> (does it need the item's key?, check(line, key) -> bool)
    "one_word": (False, lambda a, k: bool(re.fullmatch(r"[A-Za-z][A-Za-z'-]*", _bare(a)))),
    "uppercase": (False, lambda a, k: bool(re.search(r"[A-Z]", a)) and a == a.upper()),
    "yes_no": (False, lambda a, k: _bare(a).lower() in ("yes", "no")),
    "number": (False, lambda a, k: bool(re.fullmatch(r"\d+", _bare(a)))),
    "negate": (False, lambda a, k: any(w in ("not", "never") or w.endswith("n't")
                                       for w in _words(a))),
    "list": (True, lambda a, k: len(_items(a)) == k[0]
             and all(0 < len(x.split()) <= 3 for x in _items(a))),
    "past_tense": (True, lambda a, k: k[1] in _words(a) and k[0] not in _words(a)),
    "short_answer": (True, lambda a, k: len(_words(a)) <= 8
                     and any(w in _words(a) or w + "s" in _words(a) for w in k)),
    "sort": (True, lambda a, k: [w for w in re.split(r"[,\s]+", _bare(a).lower())
                                 if w and w != "and"] == list(k)),
    "starts_with": (True, lambda a, k: len(_words(a)) >= 3 and _words(a)[0] == k[0].lower()),
}


def obeys(item, reply: str) -> bool:
    """Does `reply` do what the item's instruction asks? `item` is an `Item`, or a task type's
    name for the types whose checker needs nothing of the item (one_word, uppercase, yes_no,
    number, negate)."""
    kind, key = (item, ()) if isinstance(item, str) else (item.type, item.key)
    if kind not in _CHECKS:
        raise ValueError(f"unknown task type {kind!r}; known: {sorted(_CHECKS)}")
    needs_key, check = _CHECKS[kind]
    if needs_key and not key:
        raise ValueError(f"the {kind!r} checker needs the item (its key), not only the type "
                         "name: pass the Item itself")
    return answered(reply) and bool(check(first_line(reply), key))


def score(items, replies) -> dict:
    """{"answered": share, "obeys": share, "n": count, "by_type": {type: (answered, obeys)}}."""
    items, replies = list(items), list(replies)
    if len(items) != len(replies) or not items:
        raise ValueError(f"score needs one reply per item (and at least one): got "
                         f"{len(items)} items and {len(replies)} replies")
    ans = [answered(r) for r in replies]
    ok = [obeys(it, r) for it, r in zip(items, replies)]
    by_type = {}
    for kind in dict.fromkeys(it.type for it in items):
        idx = [i for i, it in enumerate(items) if it.type == kind]
        by_type[kind] = (sum(ans[i] for i in idx) / len(idx), sum(ok[i] for i in idx) / len(idx))
    return {"answered": sum(ans) / len(items), "obeys": sum(ok) / len(items), "n": len(items),
            "by_type": by_type}


def style(replies) -> dict:
    """Over the answered replies, the share with no capital letter, with no punctuation mark
    at all (. , ! ? ; :), and with no final . ! or ? -> {"no_capital", "no_punct",
    "no_final_punct", "n": answered count} (NaN shares for none). A reply cut by the token
    budget has no final mark whatever its style: compare `no_final_punct` only between
    replies given the same room, or read `no_punct`."""
    lines = [first_line(r) for r in replies if answered(r)]
    nan = float("nan")
    if not lines:
        return {"no_capital": nan, "no_punct": nan, "no_final_punct": nan, "n": 0}
    return {"no_capital": sum(not re.search(r"[A-Z]", x) for x in lines) / len(lines),
            "no_punct": sum(not re.search(r"[.,!?;:]", x) for x in lines) / len(lines),
            "no_final_punct": sum(not re.search(r"[.!?][\"')]*$", x) for x in lines) / len(lines),
            "n": len(lines)}
