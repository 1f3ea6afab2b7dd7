"""The data of `labkit.instruct`: task types, items, their wordings, and the splits (the
package docstring has the idea)."""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace

TRAIN_TYPES = ("one_word", "uppercase", "list", "yes_no", "past_tense", "short_answer")
HELD_OUT_TYPES = ("number", "sort", "negate", "starts_with")


@dataclass(frozen=True)
class Item:
    type: str              # one of TRAIN_TYPES or HELD_OUT_TYPES
    instruction: str       # "List three fruits, separated by commas."
    response: str          # a reference reply that obeys: "Apple, banana, cherry."
    key: tuple = ()        # what the checker needs: (3,) for a list of three, ...

    @property
    def prompt(self) -> str:
        return format_prompt(self.instruction)


@dataclass
class InstructionData:
    train: list[Item] = field(repr=False)        # the training types, round the types
    test_seen: list[Item] = field(repr=False)    # held-out items of the training types
    test_unseen: list[Item] = field(repr=False)  # the held-out types (never trained on)
    train_types: tuple = TRAIN_TYPES
    held_out_types: tuple = HELD_OUT_TYPES

    def __repr__(self) -> str:
        return (f"InstructionData(train={len(self.train)}, test_seen={len(self.test_seen)}, "
                f"test_unseen={len(self.test_unseen)}; held-out types: "
                f"{', '.join(self.held_out_types)})")


def format_prompt(instruction: str) -> str:
    """'Instruction: <instruction>\\nResponse:' -- the reply follows after one space."""
    return f"Instruction: {instruction}\nResponse:"


def pairs(items, sloppy_responses: bool = False) -> list[tuple[str, str]]:
    """[(prompt, " " + response)] for `lk.sft.finetune(..., chat=False)`."""
    return [(it.prompt, " " + (sloppy(it.response) if sloppy_responses else it.response))
            for it in items]


# --- the pools the items are drawn from --------------------------------------------------------

_COLOURS = [("grass", "green"), ("snow", "white"), ("the sky on a clear day", "blue"),
            ("coal", "black"), ("a ripe banana", "yellow"), ("a ripe tomato", "red"),
            ("milk", "white"), ("a carrot", "orange"), ("a lemon", "yellow"),
            ("chocolate", "brown"), ("a fire engine", "red"), ("a frog", "green")]
_SOUNDS = [("moo", "cow"), ("woof", "dog"), ("meow", "cat"), ("oink", "pig"), ("baa", "sheep"),
           ("quack", "duck"), ("neigh", "horse"), ("hoot", "owl"), ("cluck", "hen"),
           ("ribbit", "frog"), ("hiss", "snake"), ("buzz", "bee")]
_BABIES = [("cat", "kitten"), ("dog", "puppy"), ("cow", "calf"), ("sheep", "lamb"),
           ("horse", "foal"), ("duck", "duckling"), ("frog", "tadpole"), ("bear", "cub"),
           ("goat", "kid")]
_MISC = [("What is frozen water called?", "ice"), ("What do bees make?", "honey"),
         ("Which planet do we live on?", "Earth"), ("Which season comes after winter?", "spring"),
         ("Which season comes after summer?", "autumn"),
         ("Which meal do people eat in the morning?", "breakfast"),
         ("Which body part do you use to hear?", "ears"),
         ("Which body part do you use to see?", "eyes"),
         ("Which body part do you use to smell?", "nose"),
         ("What do you sleep in at night?", "bed")]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]
_CATEGORIES = {
    "fruits": "apple banana cherry grape lemon mango pear peach plum",
    "colours": "red blue green yellow purple pink brown black white",
    "farm animals": "cow pig sheep goat horse duck chicken donkey",
    "wild animals": "lion tiger elephant giraffe zebra bear wolf fox",
    "vegetables": "carrot potato onion pea bean cabbage leek turnip",
    "drinks": "water tea coffee milk juice lemonade cocoa",
    "sports": "football tennis golf rugby cricket hockey swimming basketball",
    "musical instruments": "piano guitar violin drum flute trumpet harp cello",
    "tools": "hammer saw drill spanner screwdriver chisel",
    "vehicles": "car bus train bicycle lorry tram boat plane",
    "parts of the body": "arm leg hand foot head knee elbow shoulder",
    "planets": "Mercury Venus Earth Mars Jupiter Saturn Uranus Neptune",
    "days of the week": " ".join(_DAYS),
    "pieces of furniture": "chair table bed sofa desk shelf wardrobe",
    "items of clothing": "shirt coat hat scarf sock glove skirt jacket",
    "birds": "robin sparrow eagle owl crow swan pigeon parrot",
    "flowers": "rose tulip daisy lily poppy daffodil orchid",
    "jobs": "doctor teacher farmer baker pilot nurse driver builder",
}
_SUBJECTS = ["My sister", "The teacher", "Our neighbour", "The old man", "A young girl",
             "My friend", "The farmer", "Her brother", "The doctor", "His mother"]
_VERBS = [(v.split("/"), o) for v, o in [
    ("walks/walk/walked", "to school"), ("plays/play/played", "in the garden"),
    ("cooks/cook/cooked", "dinner"), ("paints/paint/painted", "the fence"),
    ("opens/open/opened", "the window"), ("cleans/clean/cleaned", "the kitchen"),
    ("watches/watch/watched", "a film"), ("writes/write/wrote", "a letter"),
    ("eats/eat/ate", "an apple"), ("drinks/drink/drank", "a cup of tea"),
    ("sings/sing/sang", "a song"), ("buys/buy/bought", "fresh bread"),
    ("finds/find/found", "a coin"), ("sees/see/saw", "a bird"), ("makes/make/made", "a cake"),
    ("drives/drive/drove", "to work"), ("swims/swim/swam", "in the lake"),
    ("takes/take/took", "the bus"), ("carries/carry/carried", "a heavy bag"),
    ("visits/visit/visited", "a friend"), ("fixes/fix/fixed", "the bike"),
    ("climbs/climb/climbed", "the hill"), ("feeds/feed/fed", "the cat"),
    ("calls/call/called", "a neighbour")]]
_ABILITIES = [("birds", "fly", True), ("fish", "swim", True), ("dogs", "bark", True),
              ("cats", "bark", False), ("cows", "fly", False), ("horses", "run", True),
              ("snakes", "walk", False), ("frogs", "jump", True), ("ducks", "swim", True),
              ("elephants", "fly", False), ("penguins", "fly", False), ("bees", "fly", True),
              ("rabbits", "sing", False), ("fish", "climb trees", False),
              ("monkeys", "climb trees", True), ("pigs", "fly", False)]
_SIZES = ["an ant", "a mouse", "a cat", "a dog", "a horse", "an elephant", "a whale"]
_SHORT = [  # (question, reference answer, accepted key words)
    *[(f"What do {a} eat?", f"{a.capitalize()} eat {f}.", (f,)) for a, f in [
        ("cows", "grass"), ("rabbits", "carrots"), ("pandas", "bamboo"), ("birds", "seeds"),
        ("koalas", "leaves"), ("monkeys", "bananas"), ("squirrels", "nuts"),
        ("horses", "hay")]],
    *[(f"Where do {a} live?", f"{a.capitalize()} live in {p}.", (p.split()[-1].lower(),))
      for a, p in [
        ("fish", "water"), ("bees", "a hive"), ("camels", "the desert"), ("monkeys", "trees"),
        ("penguins", "Antarctica"), ("rabbits", "burrows"), ("birds", "nests")]],
    *[(f"What do you use to {v}?", f"You use {t}.", (t.split()[-1],)) for v, t in [
        ("cut paper", "scissors"), ("dig a hole", "a spade"), ("unlock a door", "a key"),
        ("tell the time", "a clock"), ("sweep the floor", "a broom"), ("eat soup", "a spoon"),
        ("see in the dark", "a torch"), ("write on a blackboard", "chalk"),
        ("brush your teeth", "a toothbrush"), ("dry your hands", "a towel")]],
    *[(f"How does {x} taste?", f"{x.capitalize()} tastes {t}.", (t,)) for x, t in [
        ("a lemon", "sour"), ("sugar", "sweet"), ("honey", "sweet"), ("sea water", "salty"),
        ("coffee", "bitter"), ("a chilli", "hot")]],
    *[(f"What do {a} give us?", f"{a.capitalize()} give us {g}.", (g,)) for a, g in [
        ("cows", "milk"), ("hens", "eggs"), ("sheep", "wool"), ("bees", "honey"),
        ("trees", "wood")]],
    *[(f"What colour do you get when you mix {a} and {b}?", f"You get {c}.", (c,)) for a, b, c in [
        ("blue", "yellow", "green"), ("red", "white", "pink"), ("red", "yellow", "orange"),
        ("blue", "red", "purple"), ("black", "white", "grey")]],
    *[(f"What do you wear on your {p}?", f"You wear {w}.", (w, *alt)) for p, w, alt in [
        ("feet", "shoes", ("socks", "boots")), ("head", "a hat", ("hat", "cap")),
        ("hands", "gloves", ("mittens", "rings")), ("neck", "a scarf", ("scarf", "tie")),
        ("nose", "glasses", ())]],
    *[(f"What do you do with a {t}?", f"You {v} it.", (v.split()[0],)) for t, v in [
        ("book", "read"), ("chair", "sit on"), ("pen", "write with"), ("cup", "drink from"),
        ("spoon", "eat with"), ("bicycle", "ride"), ("ball", "throw"), ("drum", "play")]],
    *[(f"Where do you go to {d}?", f"You go to the {p}.", (p.split()[-1],)) for d, p in [
        ("borrow books", "library"), ("catch a train", "station"), ("buy bread", "bakery"),
        ("see a film", "cinema"), ("post a letter", "post office"), ("swim indoors", "pool")]],
]
_COUNTS = [("How many legs does a spider have?", 8), ("How many days are in a week?", 7),
           ("How many wheels does a bicycle have?", 2), ("How many months are in a year?", 12),
           ("How many sides does a triangle have?", 3), ("How many hours are in a day?", 24),
           ("How many legs does a dog have?", 4), ("How many minutes are in an hour?", 60),
           ("How many fingers are on one hand?", 5), ("How many wheels does a car have?", 4)]
_STARTS = ["Today", "Sometimes", "Usually", "Often", "Yesterday", "Now"]
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}   # "List three fruits"

UNRELATED = [  # open requests of no task type: where `style` measures a leak
    "Describe a rainy day.", "Tell me about your favourite animal.",
    "Explain how to make a cup of tea.", "Write a short note to a friend.",
    "What do you like to do at the weekend?", "Describe the place where you live.",
    "Why do people keep pets?", "Give some advice to a new student.",
    "Tell me about a good book.", "Describe your perfect holiday.",
    "Why is sleep important?", "Write a sentence about the sea.",
    "What makes a good friend?", "Describe a busy market.",
    "How do you stay healthy?", "Tell me about the moon."]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


_ASK = {  # a few wordings per type (FLAN's templates, in miniature)
    "one_word": ("Answer in one word.", "Reply with a single word.", "Use only one word."),
    "uppercase": ("Rewrite in capital letters:", "Write this in uppercase:",
                  "Copy this sentence in capital letters only:"),
    "past_tense": ("Rewrite in the past tense:", "Put this sentence in the past tense:",
                   "Change this sentence to the past tense:"),
    "negate": ("Rewrite as a negative sentence:", "Make this sentence negative:"),
    "starts_with": ("Write a sentence that starts with the word '{w}'.",
                    "Write one sentence beginning with '{w}'."),
    "list": ("List {n} {cat}, separated by commas.", "Name {n} {cat}. Separate them with commas.",
             "Give {n} {cat} as a comma-separated list."),
    "sort": ("Sort these words alphabetically:", "Put these words in alphabetical order:"),
    "yes_no": ("Answer yes or no.", "Reply with yes or no only.", "Answer with just yes or no."),
    "short_answer": ("Answer briefly.", "Give a short answer.", "Answer in a few words."),
    "number": ("Answer with a number only.", "Reply with just a number.", "Give only the number."),
}


def _pool(kind: str, rng: random.Random) -> list[Item]:
    """Every distinct item of one task type (its wording drawn from `rng`)."""
    if kind not in _ASK:
        raise ValueError(f"unknown task type {kind!r}; known: {TRAIN_TYPES + HELD_OUT_TYPES}")

    def ask(text="", **kw):
        return f"{rng.choice(_ASK[kind]).format(**kw)} {text}".strip()

    sents = [(s, v, o) for s in _SUBJECTS for v, o in _VERBS]   # ("My sister", forms, object)
    if kind == "one_word":
        qa = ([(f"What colour is {x}?", c) for x, c in _COLOURS]
              + [(f"Which animal says {s}?", a) for s, a in _SOUNDS]
              + [(f"What is a baby {a} called?", b) for a, b in _BABIES] + _MISC
              + [(f"Which day comes after {d}?", e) for d, e in zip(_DAYS, _DAYS[1:])]
              + [(f"Which month comes after {m}?", n) for m, n in zip(_MONTHS, _MONTHS[1:])])
        return [Item(kind, ask(q), _cap(a) + ".") for q, a in qa]
    if kind == "uppercase":
        return [Item(kind, ask(f"{s} {v[0]} {o}."), f"{s} {v[0]} {o}.".upper())
                for s, v, o in sents]
    if kind == "past_tense":
        return [Item(kind, ask(f"{s} {v[0]} {o}."), f"{s} {v[2]} {o}.", (v[0], v[2]))
                for s, v, o in sents]
    if kind == "negate":
        return [Item(kind, ask(f"{s} {v[0]} {o}."), f"{s} does not {v[1]} {o}.")
                for s, v, o in sents]
    if kind == "starts_with":
        return [Item(kind, ask(w=w), f"{w} {s[0].lower()}{s[1:]} "
                     f"{v[2] if w == 'Yesterday' else v[0]} {o}.", (w,))
                for w in _STARTS for s, v, o in sents]
    if kind in ("list", "sort"):
        out = []
        for cat, members in _CATEGORIES.items():
            for n in ((2, 3, 4, 5) if kind == "list" else (3, 4)):
                chosen = rng.sample(members.split(), n)
                if kind == "list":
                    out.append(Item(kind, ask(n=_NUMBER_WORDS[n], cat=cat),
                                    _cap(", ".join(chosen)) + ".", (n,)))
                else:
                    chosen = [m.lower() for m in chosen]
                    out.append(Item(kind, ask(", ".join(chosen) + "."),
                                    _cap(", ".join(sorted(chosen))) + ".", tuple(sorted(chosen))))
        return out
    if kind == "yes_no":
        colours = sorted({c for _, c in _COLOURS})
        qa = [(f"Is {x} {c}?", True) for x, c in _COLOURS]
        qa += [(f"Is {x} {rng.choice([k for k in colours if k != c])}?", False)
               for x, c in _COLOURS]
        qa += [(f"Can {a} {v}?", yes) for a, v, yes in _ABILITIES]
        qa += [(f"Is {a} bigger than {b}?", i > j) for i, a in enumerate(_SIZES)
               for j, b in enumerate(_SIZES) if i != j and abs(i - j) <= 2]
        return [Item(kind, ask(q), "Yes." if yes else "No.") for q, yes in qa]
    if kind == "short_answer":
        return [Item(kind, ask(q), a, key) for q, a, key in _SHORT]
    qa = list(_COUNTS) + [(f"What is {a} plus {b}?", a + b) for a in range(2, 10)   # number
                          for b in range(1, 10) if (a * 7 + b) % 5 == 0]
    return [Item(kind, ask(q), str(n)) for q, n in qa]


def pool_sizes() -> dict[str, int]:
    """{task type: how many distinct items it has}."""
    return {k: len(_pool(k, random.Random(0))) for k in TRAIN_TYPES + HELD_OUT_TYPES}


def instruction_data(seed: int = 0, *, n_train: int = 48, n_test: int = 10,
                     n_unseen: int = 12) -> InstructionData:
    """The data set: per training type `n_train` items for `train` and `n_test` others for
    `test_seen`; per held-out type `n_unseen` items for `test_unseen`. Deterministic in
    `seed` (which items, their wording, the list members); `train` goes round the types."""
    from ..validate import whole

    n_train, n_test = whole("n_train", n_train, low=1), whole("n_test", n_test, low=0)
    n_unseen = whole("n_unseen", n_unseen, low=0)
    train, test_seen, test_unseen = [], [], []
    for kind in TRAIN_TYPES + HELD_OUT_TYPES:
        rng = random.Random(f"{seed}:{kind}")
        items = _pool(kind, rng)
        rng.shuffle(items)
        want = n_unseen if kind in HELD_OUT_TYPES else n_train + n_test
        if want > len(items):
            raise ValueError(f"the {kind!r} task type has {len(items)} items, fewer than the "
                             f"{want} asked for: lower n_train/n_test/n_unseen "
                             f"(pool_sizes() lists every type's size)")
        if kind in HELD_OUT_TYPES:
            test_unseen += items[:n_unseen]
        else:
            train.append(items[:n_train])
            test_seen += items[n_train:n_train + n_test]
    train = [it for group in zip(*train) for it in group]          # round the types
    return InstructionData(train, test_seen, test_unseen)


# --- sloppy data (its style is measured by judge.style) ---------------------------------------


def sloppy(text: str) -> str:
    """The careless version of a response: all lowercase, no punctuation."""
    return " ".join(re.sub(r"[^a-z0-9\s]", " ", text.lower()).split())


def sloppy_items(items) -> list[Item]:
    """The same items with sloppy responses (the uppercase and list types then disobey:
    careless data teaches disobedience as well as a style)."""
    return [replace(it, response=sloppy(it.response)) for it in items]
