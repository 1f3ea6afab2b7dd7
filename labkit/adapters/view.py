"""The adapter view: LoRA adapters in one shared base, each switched on for its own calls.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3) adds to a
frozen weight W0 a low-rank update, h = W0·x + B·A·x · α/r with A [r, in], B [out, r] and B = 0
at the start, so a new adapter leaves the model as it was. `peft` injects these layers into the
model *in place*; every trainer of the lab (SFT, RL, DPO, the reward model) adds its adapter to
the same injected model, so the base LM and every tuned LM share one copy of the base weights:

    base = lm.model                       # a transformers model; peft LoRA layers injected
    view = AdapterView(base, ["sft_1"])   # what `tuned.model` is
    view(input_ids=ids)                   # adapter sft_1 on for this call only
    base(input_ids=ids)                   # every adapter off: exactly the base distribution

At rest every LoRA layer is disabled (peft's own `_disable_adapters` flag); a view turns its
adapters on for the duration of each call (`forward`, `generate`, and the `base_model` and
embeddings the lab's code calls for hidden states) and restores the flags after. The flags are
set directly because peft's public switches (`set_adapter`, `enable_adapters`) also flip every
adapter's requires_grad, which a forward call must not do. The reference model of RL and DPO
is therefore the base itself, never a second copy. A view on several adapters (a tuned LM
tuned again) sums their updates. `view.set_scale(s)` multiplies the update by s (0 = the base,
1 = tuned, > 1 beyond): α/r becomes s·α/r while the view computes.

Left out on purpose: merging adapters into the weights (a merged model is a second copy),
DoRA and other peft methods, and peft's mixed-adapter batches.
"""
from __future__ import annotations

import contextlib
import hashlib
import warnings
from pathlib import Path

import torch

# --- the LoRA layers of one injected model ---------------------------------------------------


def lora_layers(model: torch.nn.Module) -> list:
    """Every peft LoRA layer injected in `model` (empty before the first adapter)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def _keeping_flags(base: torch.nn.Module):
    """Run peft's own `inject`/`delete` and put back what they change on the side: they make
    the newest adapter active and flip requires_grad (of the base, and of every adapter,
    one being trained included); after the block every adapter is off (at rest) and each
    weight that is left asks for a gradient exactly as before."""
    flags = [(p, p.requires_grad) for p in base.parameters()]
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        for layer in lora_layers(base):
            # peft's own flag (what `enable_adapters(False)` sets), set directly: the public
            # switches also flip requires_grad, which a forward call must not do
            layer._disable_adapters = True


def add(base: torch.nn.Module, lora_config, name: str, *, seed: int = 0) -> None:
    """Inject a new LoRA adapter `name` into `base` in place (A random from `seed`, B = 0, so
    the model is unchanged), then put every adapter back at rest (off)."""
    from peft import inject_adapter_in_model

    if name in adapter_names(base):
        raise ValueError(f"the model already has an adapter named {name!r}")
    devices = [] if _device(base).type != "cuda" else [_device(base)]
    with _keeping_flags(base), torch.random.fork_rng(devices=devices), \
            warnings.catch_warnings():
        torch.manual_seed(seed)
        warnings.filterwarnings("ignore", message=".*peft_config.*")   # "multiple adapters"
        try:
            inject_adapter_in_model(lora_config, base, adapter_name=name)
        except ValueError as e:
            linear = sorted({n.rsplit(".", 1)[-1] for n, m in base.named_modules()
                             if isinstance(m, torch.nn.Linear)})
            raise ValueError(f"LoRA cannot adapt this model with target_modules="
                             f"{lora_config.target_modules!r} ({e}): its linear layers are "
                             f"named {linear}") from None
    for p in adapter_parameters(base, name):          # frozen until a trainer asks
        p.requires_grad_(False)


def adapter_names(base: torch.nn.Module) -> list[str]:
    """The adapters injected in `base`, oldest first."""
    return list(getattr(base, "peft_config", {}) or {})


def adapter_parameters(base: torch.nn.Module, name: str) -> list[torch.nn.Parameter]:
    """The LoRA weights (A and B of every adapted layer) of adapter `name`."""
    return [p for n, p in base.named_parameters() if f".{name}." in f"{n}." and "lora_" in n]


@contextlib.contextmanager
def trainable(base: torch.nn.Module, name: str):
    """Inside the block only adapter `name`'s weights ask for a gradient (-> its parameters);
    after it, the adapter is frozen again and the base's own flags are as they were."""
    params = adapter_parameters(base, name)
    own = {id(p) for p in params}
    saved = [(p, p.requires_grad) for p in base.parameters() if id(p) not in own]
    for p, _ in saved:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    try:
        yield params
    finally:
        for p in params:
            p.requires_grad_(False)
        for p, flag in saved:
            p.requires_grad_(flag)


def registry(base: torch.nn.Module) -> dict[str, str]:
    """{data key: adapter name} of the adapters trained or loaded into `base` with a key, so
    that loading one again reuses it instead of adding a copy."""
    if "_labkit_keys" not in base.__dict__:
        base.__dict__["_labkit_keys"] = {}
    return base.__dict__["_labkit_keys"]


def delete(view: "AdapterView") -> None:
    """Remove the view's own (last) adapter from the shared base, freeing its weights; the
    view must not be called after."""
    base, name = view.base, view.names[-1]
    with _keeping_flags(base):
        for layer in lora_layers(base):
            if name in layer.scaling:
                # not active, so that peft neither warns nor activates another adapter
                layer._active_adapter = [a for a in layer.active_adapters if a != name]
                layer.delete_adapter(name)
    getattr(base, "peft_config", {}).pop(name, None)
    for key in [k for k, v in registry(base).items() if v == name]:
        del registry(base)[key]


@contextlib.contextmanager
def switched_on(layers, names, scale: float = 1.0):
    """Adapters `names` on (at `scale` × α/r) in `layers` for the enclosed block; the flags
    are restored after, so views nest and the base is at rest outside any view's call."""
    saved = [(layer._active_adapter, layer._disable_adapters) for layer in layers]
    for layer in layers:
        layer._active_adapter = list(names)
        layer._disable_adapters = False
        for n in names:
            if n in layer.scaling:
                layer.scaling[n] = scale * layer.lora_alpha[n] / layer.r[n]
    try:
        yield
    finally:
        for layer, (active, disabled) in zip(layers, saved):
            layer._active_adapter, layer._disable_adapters = active, disabled


def _device(model) -> torch.device:
    return next(model.parameters()).device


# --- the view: what a tuned LM's `.model` is -----------------------------------------------------


class _On:
    """A part of the base (its body, its embeddings) called with a view's adapters on."""

    def __init__(self, view: "AdapterView", module):
        self._view, self._module = view, module

    def __call__(self, *args, **kwargs):
        with self._view.on():
            return self._module(*args, **kwargs)

    def get_base_model(self):               # labkit.dist.forward reads its forward's keywords
        return self._module

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_view", "_module"):   # copy, pickle: not set yet
            raise AttributeError(name)
        return getattr(self._module, name)


class AdapterView(torch.nn.Module):
    """The shared `base` (a transformers model with LoRA layers injected) seen with adapters
    `names` on: called like the transformers model, it turns them on for each call only."""

    def __init__(self, base: torch.nn.Module, names, *, scale: float = 1.0, meta=None):
        super().__init__()
        names = [names] if isinstance(names, str) else list(names)
        missing = [n for n in names if n not in adapter_names(base)]
        if not names or missing:
            raise ValueError(f"no adapter {missing or names} in this model; it has "
                             f"{adapter_names(base)}")
        self.base = base
        self.names = names
        self.meta = dict(meta or {})     # what made it: the trainer's config, data key, base
        self._scale = float(scale)
        self._layers = lora_layers(base)   # a plain list: not registered twice as modules

    # the switch
    def on(self):
        """A context in which the base computes with this view's adapters on."""
        return switched_on(self._layers, self.names, self._scale)

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, s: float) -> "AdapterView":
        """Scale the adapters' update by `s` (0 = the base, 1 = as trained); returns self."""
        from ..validate import number

        self._scale = number("scale", s)
        return self

    # called like the transformers model
    def forward(self, *args, **kwargs):
        with self.on():
            return self.base(*args, **kwargs)

    def generate(self, *args, **kwargs):
        with self.on():
            return self.base.generate(*args, **kwargs)

    @property
    def base_model(self):
        """The transformer body (hidden states, no vocabulary projection), adapters on."""
        return _On(self, self.base.base_model)

    def get_output_embeddings(self):
        return _On(self, self.base.get_output_embeddings())

    def get_input_embeddings(self):
        return _On(self, self.base.get_input_embeddings())

    def get_base_model(self):
        """The underlying transformers model (whose forward's keywords `dist.forward` reads)."""
        return self.base

    @property
    def config(self):
        return self.base.config

    @property
    def generation_config(self):
        return self.base.generation_config

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def device(self) -> torch.device:
        return self.base.device

    def __repr__(self) -> str:
        return (f"AdapterView(adapters={self.names}, scale={self._scale:g}, "
                f"base={type(self.base).__name__})")


@contextlib.contextmanager
def scaled(view: AdapterView, s: float):
    """`view` at scale `s` for the enclosed block (the scale it had is restored after)."""
    before = view.scale
    view.set_scale(s)
    try:
        yield view
    finally:
        view.set_scale(before)


def split(model) -> tuple[torch.nn.Module, list[str]]:
    """(the shared transformers model, the adapters on) of a base model or an `AdapterView`."""
    if isinstance(model, AdapterView):
        return model.base, list(model.names)
    return model, []


def free_name(base: torch.nn.Module, prefix: str) -> str:
    """`prefix_1`, `prefix_2`, ...: the first name no adapter of `base` has."""
    taken, i = set(adapter_names(base)), 1
    while f"{prefix}_{i}" in taken:
        i += 1
    return f"{prefix}_{i}"


# --- a new adapter for a trainer, and the base it is on ----------------------------------------


def create(lm, lora_config, *, prefix: str, seed: int = 0) -> AdapterView:
    """A new adapter (`prefix_1`, `prefix_2`, ...) in `lm`'s shared base, stacked on the
    adapters of a tuned `lm`, and the view on it; the view's meta records the base."""
    base, under = split(lm.model)
    name = free_name(base, prefix)
    add(base, lora_config, name, seed=seed)
    return AdapterView(base, under + [name], meta={"base": base_info(lm)})


@contextlib.contextmanager
def training(view: AdapterView):
    """The block in which a trainer trains the view's own (last) adapter -> its parameters:
    only they ask for a gradient, the view's adapters stay on for whole steps (a
    checkpointed backward recomputes the forward pass outside the view's own calls), and
    after the block the base is back in its mode (eval: no dropout) with its own flags."""
    was = view.base.training
    try:
        with trainable(view.base, view.names[-1]) as params, view.on():
            yield params
    finally:
        view.base.train(was)


def fingerprint(base: torch.nn.Module) -> str:
    """A short hash of the base's weights (names, shapes and 16 strided values of every
    tensor, LoRA weights left out): the same checkpoint gives the same fingerprint on any
    device, another checkpoint of the same architecture a different one. Milliseconds."""
    h = hashlib.sha256()
    for name, p in sorted(base.named_parameters(), key=lambda kv: kv[0]):
        if "lora_" in name:
            continue
        flat = p.detach().reshape(-1)
        sample = flat[::max(1, flat.numel() // 16)][:16].double().cpu().tolist()
        h.update(f"{name.replace('.base_layer', '')}{tuple(p.shape)}{sample}".encode())
    return h.hexdigest()[:16]


def base_info(lm) -> dict:
    """What the manifest records of the base LM `lm` (its adapters, if any, left out)."""
    base, _ = split(lm.model)
    name = lm.name
    if isinstance(lm.model, AdapterView) and "base" in lm.model.meta:
        name = lm.model.meta["base"]["name"]
    elif Path(str(name)).expanduser().is_dir():      # a local model directory: its full path
        name = str(Path(name).expanduser().resolve())
    cfg = base.config
    return {"name": name, "fingerprint": fingerprint(base),
            "hidden_size": getattr(cfg, "hidden_size", None),
            "vocab_size": getattr(cfg, "vocab_size", None),
            "num_hidden_layers": getattr(cfg, "num_hidden_layers", None)}
