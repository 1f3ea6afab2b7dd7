"""Notebook 03's exercises, answered the way learners answer them: the response-only labels
(`-100` on the prompt and the padding of right-padded rows) and the warm-up-then-decay
learning rate, written from the exercise texts, each with the verdict key it must get."""
import math

import torch

from labkit.checks._corpus import Entry

# --- masked_labels(ids, prompt_lengths, lengths) ---------------------------------------------


def loop(ids, prompt_lengths, lengths):
    """Correct: copy, then blank out each row's prompt and padding."""
    labels = ids.clone()
    for i in range(ids.shape[0]):
        labels[i, :prompt_lengths[i]] = -100
        labels[i, lengths[i]:] = -100
    return labels


def vectorised(ids, prompt_lengths, lengths):
    """Correct: one boolean mask from position indices."""
    pos = torch.arange(ids.shape[1]).unsqueeze(0)
    p = torch.tensor(prompt_lengths).unsqueeze(1)
    n = torch.tensor(lengths).unsqueeze(1)
    keep = (pos >= p) & (pos < n)
    return torch.where(keep, ids, torch.tensor(-100))


def fill_then_copy(ids, prompt_lengths, lengths):
    """Correct: start from -100 and copy the response in."""
    labels = torch.full_like(ids, -100)
    for i, (p, n) in enumerate(zip(prompt_lengths, lengths)):
        labels[i, p:n] = ids[i, p:n]
    return labels


def aliased(ids, prompt_lengths, lengths):
    labels = ids                                  # no copy: ids itself gets -100
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i]] = -100
        labels[i, lengths[i]:] = -100
    return labels


def edits_then_clones(ids, prompt_lengths, lengths):
    for i in range(len(ids)):
        ids[i, :prompt_lengths[i]] = -100
        ids[i, lengths[i]:] = -100
    return ids.clone()


def prompt_minus_one(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i] - 1] = -100    # "the last prompt token predicts the first"
        labels[i, lengths[i]:] = -100
    return labels


def prompt_plus_one(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i] + 1] = -100
        labels[i, lengths[i]:] = -100
    return labels


def last_token_index(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i]] = -100
        labels[i, lengths[i] - 1:] = -100           # thinks lengths[i] - 1 is the first pad
    return labels


def prompt_only(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i, p in enumerate(prompt_lengths):
        labels[i, :p] = -100
    return labels


def zeros(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i]] = 0
        labels[i, lengths[i]:] = 0
    return labels


def minus_one(ids, prompt_lengths, lengths):
    labels = torch.full_like(ids, -1)
    for i, (p, n) in enumerate(zip(prompt_lengths, lengths)):
        labels[i, p:n] = ids[i, p:n]
    return labels


def inverted(ids, prompt_lengths, lengths):
    labels = torch.full_like(ids, -100)
    for i, p in enumerate(prompt_lengths):
        labels[i, :p] = ids[i, :p]
    return labels


def shifted(ids, prompt_lengths, lengths):
    """Next-token labels: position t gets the token at t + 1."""
    labels = torch.full_like(ids, -100)
    for i, (p, n) in enumerate(zip(prompt_lengths, lengths)):
        labels[i, p - 1:n - 1] = ids[i, p:n]
    return labels


def left_padded(ids, prompt_lengths, lengths):
    labels = torch.full_like(ids, -100)
    seq = ids.shape[1]
    for i, (p, n) in enumerate(zip(prompt_lengths, lengths)):
        start = seq - n + p
        labels[i, start:] = ids[i, start:]
    return labels


def response_lengths(ids, prompt_lengths, lengths):
    labels = torch.full_like(ids, -100)
    for i, (p, n) in enumerate(zip(prompt_lengths, lengths)):
        labels[i, p:p + n] = ids[i, p:p + n]        # reads lengths as the response's length
    return labels


def batch_max(ids, prompt_lengths, lengths):
    labels = ids.clone()
    labels[:, :max(prompt_lengths)] = -100
    for i, n in enumerate(lengths):
        labels[i, n:] = -100
    return labels


def pad_by_value(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i, p in enumerate(prompt_lengths):
        labels[i, :p] = -100
    labels[ids == 0] = -100                         # "padding is token 0"
    return labels


def plus_one_and_padding(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i, p in enumerate(prompt_lengths):
        labels[i, :p + 1] = -100
    return labels


def one_pad_position(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i]] = -100
        labels[i, lengths[i]] = -100                # IndexError on a row without padding
    return labels


def no_return(ids, prompt_lengths, lengths):
    labels = ids.clone()
    for i in range(len(ids)):
        labels[i, :prompt_lengths[i]] = -100
        labels[i, lengths[i]:] = -100


def todo_mask(ids, prompt_lengths, lengths):
    raise NotImplementedError


MASK = [
    Entry("loop", loop, "passed", "correct"),
    Entry("vectorised", vectorised, "passed", "correct, one mask"),
    Entry("fill_then_copy", fill_then_copy, "passed", "correct, from -100"),
    Entry("aliased", aliased, "in_place", "labels = ids: edits the model's input"),
    Entry("edits_then_clones", edits_then_clones, "in_place", "edits ids, returns a copy"),
    Entry("prompt_minus_one", prompt_minus_one, "last_prompt_token",
          "masks one prompt token too few"),
    Entry("prompt_plus_one", prompt_plus_one, "first_response_masked",
          "masks the first response token"),
    Entry("last_token_index", last_token_index, "last_response_masked", "masks the end token"),
    Entry("prompt_only", prompt_only, "padding_counted", "never masks the padding"),
    Entry("zeros", zeros, "zero_fill", "0 instead of -100"),
    Entry("minus_one", minus_one, "fill_value", "-1 instead of -100"),
    Entry("inverted", inverted, "inverted", "keeps the prompt, masks the response"),
    Entry("shifted", shifted, "shifted", "labels[t] = ids[t + 1]"),
    Entry("left_padded", left_padded, "left_padding", "assumes left padding"),
    Entry("response_lengths", response_lengths, "response_lengths",
          "lengths read as response lengths"),
    Entry("batch_max", batch_max, "one_prompt_length", "the longest prompt length for every row"),
    Entry("pad_by_value", pad_by_value, "unknown", "finds padding as token 0 (the pad is 2 in the "
          "last case, and so is the end token)"),
    Entry("plus_one_and_padding", plus_one_and_padding, "unknown",
          "two mistakes: first response token masked, padding counted"),
    Entry("one_pad_position", one_pad_position, "raised", "indexes lengths[i] in a full row"),
    Entry("no_return", no_return, "none", "forgets return"),
    Entry("todo", todo_mask, "not_attempted", "not attempted"),
    Entry("returns_float", lambda ids, p, n: loop(ids, p, n).float(), "dtype", "float labels"),
    Entry("returns_mask", lambda ids, p, n: loop(ids, p, n) != -100, "dtype", "the mask"),
    Entry("returns_list", lambda ids, p, n: loop(ids, p, n).tolist(), "type", "a list"),
    Entry("returns_shifted_shape", lambda ids, p, n: loop(ids, p, n)[:, 1:], "shape",
          "labels[:, 1:]: one column short"),
]

# --- lr_at(step, *, learning_rate, warmup_steps, max_steps) ----------------------------------


def branches(step, *, learning_rate, warmup_steps, max_steps):
    """Correct."""
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


def three_branches(step, *, learning_rate, warmup_steps, max_steps):
    """Correct: <= at the peak gives the same value."""
    if step >= max_steps:
        return 0.0
    if warmup_steps > 0 and step <= warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * (1 - (step - warmup_steps) / (max_steps - warmup_steps))


def as_tensor(step, *, learning_rate, warmup_steps, max_steps):
    """Correct, returned as a 0-d tensor."""
    s = torch.tensor(float(step))
    if step < warmup_steps:
        return learning_rate * s / warmup_steps
    return learning_rate * torch.clamp((max_steps - s) / max(1, max_steps - warmup_steps), min=0)


def warmup_plus_one(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    return learning_rate * max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


def decay_only(step, *, learning_rate, warmup_steps, max_steps):
    return learning_rate * max(0.0, 1 - step / max_steps)


def warmup_then_constant(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate


def decay_over_all_steps(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * max(0.0, 1 - step / max_steps)


def zero_at_last_step(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    last = max_steps - 1                               # "the last step has rate 0"
    return learning_rate * max(0.0, (last - step) / max(1, last - warmup_steps))


def steps_one_based(step, *, learning_rate, warmup_steps, max_steps):
    step = step + 1
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


def zero_one_step_late(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * max(0.0, (max_steps - step + 1) / (max_steps - warmup_steps + 1))


def cosine(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return learning_rate * 0.5 * (1 + math.cos(math.pi * progress))


def no_clamp(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    return learning_rate * (max_steps - step) / (max_steps - warmup_steps)


def multiplier(step, *, learning_rate, warmup_steps, max_steps):
    """LambdaLR's factor, as in the transformers source."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (max_steps - step) / max(1, max_steps - warmup_steps))


def floor_division(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * (step // warmup_steps)
    return learning_rate * max(0, (max_steps - step) // max(1, max_steps - warmup_steps))


def min_of_ramps(step, *, learning_rate, warmup_steps, max_steps):
    """One line: the smaller of the two ramps (wrong at step 0 without a warm-up)."""
    up = step / max(1, warmup_steps)
    down = (max_steps - step) / max(1, max_steps - warmup_steps)
    return learning_rate * max(0.0, min(up, down))


def plus_one_no_clamp(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * (step + 1) / warmup_steps
    return learning_rate * (max_steps - step) / max(1, max_steps - warmup_steps)


def unguarded(step, *, learning_rate, warmup_steps, max_steps):
    warm = step / warmup_steps                          # ZeroDivisionError when warmup_steps = 0
    if step < warmup_steps:
        return learning_rate * warm
    return learning_rate * max(0.0, (max_steps - step) / (max_steps - warmup_steps))


def missing_else(step, *, learning_rate, warmup_steps, max_steps):
    if step < warmup_steps:
        return learning_rate * step / warmup_steps
    elif step < max_steps:
        return learning_rate * (max_steps - step) / (max_steps - warmup_steps)


def whole_schedule(step, *, learning_rate, warmup_steps, max_steps):
    return [branches(s, learning_rate=learning_rate, warmup_steps=warmup_steps,
                     max_steps=max_steps) for s in range(max_steps)]


def todo_lr(step, *, learning_rate, warmup_steps, max_steps):
    raise NotImplementedError


LR = [
    Entry("branches", branches, "passed", "correct"),
    Entry("three_branches", three_branches, "passed", "correct, <= at the peak"),
    Entry("as_tensor", as_tensor, "passed", "correct, a 0-d tensor"),
    Entry("warmup_plus_one", warmup_plus_one, "warmup_ahead", "step + 1 in the warm-up"),
    Entry("decay_only", decay_only, "no_warmup", "no warm-up"),
    Entry("warmup_then_constant", warmup_then_constant, "no_decay", "no decay"),
    Entry("decay_over_all_steps", decay_over_all_steps, "decay_from_zero",
          "1 - step / max_steps after the warm-up"),
    Entry("zero_at_last_step", zero_at_last_step, "ends_early", "reaches 0 at max_steps - 1"),
    Entry("zero_one_step_late", zero_one_step_late, "ends_late", "reaches 0 at max_steps + 1"),
    Entry("steps_one_based", steps_one_based, "one_based", "step + 1 everywhere"),
    Entry("cosine", cosine, "cosine", "cosine decay"),
    Entry("no_clamp", no_clamp, "negative", "negative past max_steps"),
    Entry("multiplier", multiplier, "factor_only", "returns the factor"),
    Entry("floor_division", floor_division, "integer_division", "// instead of /"),
    Entry("min_of_ramps", min_of_ramps, "unknown", "min(up, down): 0 at step 0 without warm-up"),
    Entry("plus_one_no_clamp", plus_one_no_clamp, "unknown",
          "two mistakes: step + 1 in the warm-up, no clamp"),
    Entry("unguarded", unguarded, "raised", "divides by warmup_steps = 0"),
    Entry("missing_else", missing_else, "none", "no return after max_steps"),
    Entry("whole_schedule", whole_schedule, "type", "returns the whole schedule"),
    Entry("returns_str", lambda step, **kw: f"{branches(step, **kw):.3g}", "type",
          "a formatted string"),
    Entry("todo", todo_lr, "not_attempted", "not attempted"),
]

CORPUS = {"check_masked_labels": MASK, "check_lr_schedule": LR}
