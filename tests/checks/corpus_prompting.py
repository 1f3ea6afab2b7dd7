"""Notebook 02's exercises, answered the way learners answer them: the few-shot prompt builder
and the multi-token label scorer, written from the exercise text, each with the verdict key
it must get."""
import torch
import torch.nn.functional as F

import labkit as lk
from labkit.checks._corpus import Entry


def todo(*args):
    raise NotImplementedError


# --- the prompt builder -----------------------------------------------------------------------

def join_blocks(shots, query, instruction=""):
    blocks = [instruction] if instruction else []
    for text, label in shots:
        blocks.append(f"Review: {text}\nSentiment: {label}")
    blocks.append(f"Review: {query}\nSentiment:")
    return "\n\n".join(blocks)


def concatenate(shots, query, instruction=""):
    prompt = instruction + "\n\n" if instruction else ""
    for text, label in shots:
        prompt += "Review: " + text + "\nSentiment: " + label + "\n\n"
    return prompt + "Review: " + query + "\nSentiment:"


def appends_to_shots(shots, query, instruction=""):
    """Correct, but appends the query to the caller's list of shots."""
    shots.append((query, None))
    blocks = [instruction] if instruction else []
    for text, label in shots:
        blocks.append(f"Review: {text}\nSentiment:" + (f" {label}" if label else ""))
    return "\n\n".join(blocks)


def trailing_space(shots, query, instruction=""):
    return join_blocks(shots, query, instruction) + " "


def blank_line_after_each(shots, query, instruction=""):
    prompt = instruction + "\n\n" if instruction else ""
    for text, label in list(shots) + [(query, "")]:
        prompt += f"Review: {text}\nSentiment: {label}".rstrip(" ") + "\n\n"
    return prompt


def newest_first(shots, query, instruction=""):
    blocks = []
    for text, label in shots:
        blocks.insert(0, f"Review: {text}\nSentiment: {label}")
    return "\n\n".join(([instruction] if instruction else []) + blocks
                       + [f"Review: {query}\nSentiment:"])


def glued_label(shots, query, instruction=""):
    blocks = [instruction] if instruction else []
    blocks += [f"Review: {t}\nSentiment:{label}" for t, label in shots]
    return "\n\n".join(blocks + [f"Review: {query}\nSentiment:"])


def no_labels(shots, query, instruction=""):
    blocks = [instruction] if instruction else []
    blocks += [f"Review: {t}\nSentiment:" for t, _ in shots]
    return "\n\n".join(blocks + [f"Review: {query}\nSentiment:"])


def one_newline(shots, query, instruction=""):
    return join_blocks(shots, query, instruction).replace("\n\n", "\n")


def no_instruction(shots, query, instruction=""):
    return join_blocks(shots, query)


def instruction_last(shots, query, instruction=""):
    prompt = join_blocks(shots, query)
    return prompt + ("\n\n" + instruction if instruction else "")


def always_instruction(shots, query, instruction=""):
    return instruction + "\n\n" + join_blocks(shots, query)


def review_colon(shots, query, instruction=""):
    return join_blocks(shots, query, instruction).replace("Review: ", "Review:")


def text_keyword(shots, query, instruction=""):
    return join_blocks(shots, query, instruction).replace("Review:", "Text:")


def dict_shots(shots, query, instruction=""):
    blocks = [f"Review: {s['text']}\nSentiment: {s['label']}" for s in shots]
    return "\n\n".join(blocks + [f"Review: {query}\nSentiment:"])


PROMPT_CORPUS = [
    Entry("join_blocks", join_blocks, "passed", "correct"),
    Entry("concatenate", concatenate, "passed", "correct"),
    Entry("appends_to_shots", appends_to_shots, "passed", "correct, appends to the caller's list"),
    Entry("trailing_space", trailing_space, "trailing", "a space after the final colon"),
    Entry("blank_line_after_each", blank_line_after_each, "trailing", "ends with a blank line"),
    Entry("newest_first", newest_first, "reversed_shots", "inserts each shot at the front"),
    Entry("glued_label", glued_label, "label_glued", "'Sentiment:positive'"),
    Entry("no_labels", no_labels, "no_labels", "shots without their labels"),
    Entry("one_newline", one_newline, "single_newline", "blocks separated by '\\n'"),
    Entry("no_instruction", no_instruction, "no_instruction", "drops the instruction"),
    Entry("instruction_last", instruction_last, "instruction_position", "instruction at the end"),
    Entry("always_instruction", always_instruction, "blank_start",
          "an empty instruction still gets its blank line"),
    Entry("review_colon", review_colon, "spacing", "'Review:<text>', no space"),
    Entry("text_keyword", text_keyword, "unknown", "'Text:' instead of 'Review:'"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("dict_shots", dict_shots, "raised", "reads the shots as dicts"),
    Entry("returns_none", lambda s, q, i="": print(join_blocks(s, q, i)), "none", "prints it"),
    Entry("returns_lines", lambda s, q, i="": join_blocks(s, q, i).split("\n"), "type",
          "a list of lines"),
]


# --- the label scorer ---------------------------------------------------------------------------

def _run(lm, prompt, label, space=" "):
    """Tokenize the prompt and the label separately, concatenate, run the model once."""
    p = lm.ids(prompt, start=True)
    c = lm.ids(space + label, start=False)
    ids = torch.tensor([p + c])
    with torch.no_grad():
        logits = lm.model(ids).logits[0]              # seq vocab
    return ids[0], len(p), logits


def scorer(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    logp = torch.log_softmax(logits, dim=-1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(n, len(ids)))


def seq_logprob(lm, prompt, label):
    ids = lm.ids(prompt, start=True)
    full = torch.tensor([ids + lm.ids(" " + label, start=False)])
    return float(lk.dist.seq_logprob(lm.model, full, len(ids)))


def first_token(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(torch.log_softmax(logits[n - 1], -1)[ids[n]])


def no_space(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label, space="")
    return float(torch.log_softmax(logits[n - 1:-1], -1).gather(1, ids[n:, None]).sum())


def probability(lm, prompt, label):
    return float(torch.exp(torch.tensor(scorer(lm, prompt, label))))


def averaged(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(torch.log_softmax(logits[n - 1:-1], -1).gather(1, ids[n:, None]).mean())


def logits_from_n(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(torch.log_softmax(logits[n:], -1).gather(1, ids[n:, None]).sum())


def from_last_prompt_position(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(torch.log_softmax(logits[n - 1], -1)[ids[n:]].sum())


def whole_sequence(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(torch.log_softmax(logits[:-1], -1).gather(1, ids[1:, None]).sum())


def raw_logits(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(logits[n - 1:-1].gather(1, ids[n:, None]).sum())


def softmax_dim1(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    logp = torch.log_softmax(logits[None], dim=1)[0]       # over the positions
    return float(logp[n - 1:-1].gather(1, ids[n:, None]).sum())


def cross_entropy_sum(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(F.cross_entropy(logits[n - 1:-1], ids[n:], reduction="sum"))


def cross_entropy(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(F.cross_entropy(logits[n - 1:-1], ids[n:]))


def per_token(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return torch.log_softmax(logits[n - 1:-1], -1).gather(1, ids[n:, None])[:, 0]


def averaged_logits(lm, prompt, label):
    ids, n, logits = _run(lm, prompt, label)
    return float(logits[n - 1:-1].gather(1, ids[n:, None]).mean())


LABEL_CORPUS = [
    Entry("scorer", scorer, "passed", "correct"),
    Entry("seq_logprob", seq_logprob, "passed", "correct, with lk.dist.seq_logprob"),
    Entry("reference", lk.prompting.label_logprob, "passed", "the batched reference"),
    Entry("first_token", first_token, "first_token_only", "only the first token"),
    Entry("no_space", no_space, "no_space", "label without its leading space"),
    Entry("probability", probability, "probability", "returns p"),
    Entry("averaged", averaged, "mean", "mean over the tokens"),
    Entry("logits_from_n", logits_from_n, "misaligned", "logits[n:] instead of logits[n-1:-1]"),
    Entry("from_last_prompt_position", from_last_prompt_position, "last_position",
          "every token from the prompt's last position"),
    Entry("whole_sequence", whole_sequence, "includes_prompt", "scores the prompt too"),
    Entry("raw_logits", raw_logits, "raw_logits", "sums logits"),
    Entry("softmax_dim1", softmax_dim1, "softmax_dim", "log_softmax over the positions"),
    Entry("cross_entropy_sum", cross_entropy_sum, "nll", "a summed loss"),
    Entry("cross_entropy", cross_entropy, "cross_entropy_mean", "F.cross_entropy's mean"),
    Entry("per_token", per_token, "not_summed", "returns one value per token"),
    Entry("averaged_logits", averaged_logits, "unknown", "two mistakes: raw logits, averaged"),
    Entry("todo", todo, "not_attempted", "not attempted"),
    Entry("calls_lm", lambda lm, prompt, label: lm(prompt + " " + label), "raised",
          "calls the LM wrapper"),
    Entry("returns_none", lambda lm, prompt, label: None, "none", "no return"),
    Entry("returns_text", lambda lm, prompt, label: f"{scorer(lm, prompt, label):.3f}", "type",
          "a formatted string"),
]

CORPUS = {"check_few_shot_prompt": PROMPT_CORPUS, "check_label_logprob": LABEL_CORPUS}
