"""Adapter directories: saved atomically, checked against their base, and cached by key.

A directory is peft's own (`adapter_config.json`, `adapter_model.safetensors`, so
`peft.PeftModel.from_pretrained` reads it too) plus `labkit_adapter.json`, the manifest: the
base it was made for (name, sizes, a fingerprint of its weights), what made it (the trainer's
config and data key), and every file with its size. Everything is written into a temporary
folder beside the target, the manifest last, then renamed into place (the way
`labkit.models.save_cache` writes the model cache), so a reader never finds a half-written
adapter at the target, and a folder without a complete manifest is refused as half-written
with a message saying what to do. Saving over an adapter is refused unless `overwrite=True`.

The cache: a trainer names a directory by `cache_key` (sha256 of the base's name and weights'
fingerprint and whatever the trainer passes: its config, its data), saves the adapter and its
training history there (`keep`), and next time `cached` attaches it instead of training, so
re-running a notebook, or opening notebook 07 after 03 and 04, does not train again.

Left out on purpose: saving a stack of adapters as one directory, and any download: a base
named in a manifest is loaded by `labkit.models.load`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .view import AdapterView, add, adapter_names, base_info, delete, free_name, registry

MANIFEST = "labkit_adapter.json"
PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."     # how peft's PeftModel names the keys it saves
HISTORY = "history.json"
FORMAT = 1

# --- which base an adapter belongs to -------------------------------------------------------


def check_base(manifest: dict, lm, directory) -> None:
    """A ValueError if the adapter in `directory` was made for another base than `lm`'s."""
    want, have = manifest.get("base", {}), base_info(lm)
    keys = [k for k in ("hidden_size", "vocab_size", "num_hidden_layers", "fingerprint")
            if want.get(k) is not None and want.get(k) != have[k]]
    if keys:
        what = ", ".join(f"{k} {want[k]} vs {have[k]}" for k in keys)
        raise ValueError(
            f"the adapter in {directory} was made for the base {want.get('name')!r}, not for "
            f"{have['name']!r} ({what}): attach it to the model it was trained on, or load it "
            f"with lk.load({str(directory)!r}), which loads its own base")


# --- saving and reading an adapter directory ------------------------------------------------


def state_dict(base: torch.nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Adapter `name`'s weights under peft's file names (`base_model.model.<module>.lora_A.weight`,
    the adapter's name left out)."""
    out = {}
    for n, p in base.named_parameters():
        if "lora_" in n and f".{name}." in f"{n}.":
            key = re.sub(rf"(lora_[A-Za-z_]+)\.{re.escape(name)}(\.|$)", r"\1\2", n)
            out[PEFT_PREFIX + key] = p.detach().to("cpu", torch.float32).contiguous()
    return out


def save(tuned, directory, *, history=None, overwrite: bool = False) -> Path:
    """Write a LoRA-tuned LM's adapter to `directory`: peft's two files, the training
    `history` (if given) and the manifest last, in a temporary folder beside it renamed into
    place. An existing adapter is refused unless `overwrite`."""
    from safetensors.torch import save_file

    view = tuned.model
    if not isinstance(view, AdapterView):
        raise ValueError("only an LM tuned with LoRA has an adapter to save; a fully "
                         "fine-tuned model is a whole model: tuned.model.save_pretrained(dir)")
    if len(view.names) != 1:
        raise ValueError(f"this model has a stack of {len(view.names)} adapters "
                         f"{view.names}: only a single adapter can be saved")
    target = Path(directory).expanduser()
    _refuse_existing(target, overwrite)
    name, base = view.names[0], view.meta.get("base") or base_info(tuned)
    meta = {k: v for k, v in view.meta.items() if k not in ("base", "directory", "files")}
    config = dataclasses.replace(view.base.peft_config[name], base_model_name_or_path=base["name"],
                                 inference_mode=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old = None
    try:
        config.save_pretrained(str(tmp))                        # adapter_config.json
        save_file(state_dict(view.base, name), str(tmp / PEFT_WEIGHTS), metadata={"format": "pt"})
        if history is not None:
            (tmp / HISTORY).write_text(json.dumps(history))
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {**meta, "format": FORMAT, "base": base, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))  # last
        _refuse_existing(target, overwrite)             # someone may have saved meanwhile
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / "adapter")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return target


def _refuse_existing(target: Path, overwrite: bool) -> None:
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} is a file, not an adapter directory: choose another path")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise ValueError(f"{target} already holds an adapter (or other files): pass "
                         f"overwrite=True to replace it, or choose another directory")


def read_manifest(directory) -> dict:
    """The manifest of a complete adapter directory, or a ValueError that says what is wrong.
    A plain peft adapter (no manifest) gets one made from its adapter_config.json."""
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise ValueError(f"there is no adapter directory at {path}")
    half = (f"{path} is a half-written adapter directory ({{why}}): saving or training was "
            f"probably interrupted. Delete it and save (or train with cache=True) again")
    if not (path / MANIFEST).exists():
        if (path / PEFT_CONFIG).exists() and (path / PEFT_WEIGHTS).exists() \
                and ".tmp-" not in path.name:
            cfg = json.loads((path / PEFT_CONFIG).read_text())
            return {"format": 0, "base": {"name": cfg.get("base_model_name_or_path")}}
        raise ValueError(half.format(why=f"no {MANIFEST}, which is written last"))
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(half.format(why=f"{MANIFEST} is incomplete")) from None
    for fname, size in files.items():
        if not (path / fname).is_file():
            raise ValueError(half.format(why=f"{fname} is missing"))
        if (path / fname).stat().st_size != size:
            raise ValueError(half.format(why=f"{fname} has {(path / fname).stat().st_size} "
                                             f"bytes, the manifest says {size}"))
    return manifest


def base_name(directory) -> str:
    """The name (or path) of the base model the adapter in `directory` was made for."""
    name = read_manifest(directory)["base"].get("name")
    if not name:
        raise ValueError(f"the adapter in {directory} does not say which base model it was "
                         "made for: load that model and attach the adapter with "
                         "lk.sft.load_adapter(lm, directory)")
    return name


def attach(lm, directory, *, name: str | None = None):
    """A tuned LM: the adapter in `directory` added to `lm`'s model (shared, not copied).
    Refused if the adapter was made for another base. `lm` is returned untouched."""
    from peft import LoraConfig
    from safetensors.torch import load_file

    path = Path(directory).expanduser()
    manifest = read_manifest(path)
    if isinstance(lm.model, AdapterView):
        raise ValueError("attach an adapter to the base LM, not to a tuned one")
    check_base(manifest, lm, path)
    base, meta = lm.model, {k: v for k, v in manifest.items() if k != "files"}
    known = registry(base).get(manifest.get("key") or "")
    if known in adapter_names(base):      # attached before (a notebook cell run again): reuse
        return dataclasses.replace(lm, model=AdapterView(base, [known], meta=meta).eval(),
                                   name=f"{lm.name} + {known}")
    name = name or free_name(base, "loaded")
    add(base, LoraConfig.from_pretrained(str(path)), name)
    weights = load_file(str(path / PEFT_WEIGHTS), device=str(next(base.parameters()).device))
    mapped = {}
    for key, value in weights.items():
        key = key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key
        mapped[re.sub(r"(lora_[A-Za-z_]+)(\.|$)", rf"\1.{name}\2", key, count=1)] = value
    view = AdapterView(base, [name], meta=meta)
    try:
        own = {n for n, _ in base.named_parameters() if f".{name}." in f"{n}."}
        wrong = sorted(set(mapped) - own)
        if wrong or own - set(mapped):
            raise ValueError(f"the adapter in {path} does not fit this model: "
                             f"{len(wrong)} unexpected and {len(own - set(mapped))} missing "
                             f"weights (e.g. {(wrong or sorted(own - set(mapped)))[0]})")
        with torch.no_grad():
            params = dict(base.named_parameters())
            for key, value in mapped.items():
                if params[key].shape != value.shape:
                    raise ValueError(f"the adapter in {path} does not fit this model: {key} "
                                     f"is {tuple(value.shape)}, the model's "
                                     f"{tuple(params[key].shape)}")
                params[key].copy_(value)
    except BaseException:
        delete(view)
        raise
    view.meta["directory"] = str(path)
    if manifest.get("key"):
        registry(base)[manifest["key"]] = name
    return dataclasses.replace(lm, model=view.eval(), name=f"{lm.name} + {name}")


# --- the cache: one directory per trained adapter, named by what made it ----------------------


def cache_key(lm, trainer: str, **parts) -> str:
    """`<trainer>-<sha256 of the base (name, weights' fingerprint) and parts>`: the cache entry
    of an adapter trained from `lm` with `parts` (the config, the data: anything JSON-able)."""
    info = base_info(lm)
    blob = json.dumps({"base": [info["name"], info["fingerprint"]], **parts}, sort_keys=True,
                      default=str)
    return f"{trainer}-{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


def cached(lm, directory):
    """(`lm` with the cached adapter in `directory` attached, its history), or None if there
    is none. An adapter already attached in this process is reused, not added again."""
    path = Path(directory).expanduser()
    if not path.exists():
        return None
    history = path / HISTORY
    return attach(lm, path), json.loads(history.read_text()) if history.exists() else []


def keep(tuned, directory, history, *, force: bool = False) -> Path:
    """Save a just-trained adapter as the cache entry `directory` (an entry another kernel
    wrote meanwhile is kept, unless `force`), and remember it for `cached` in this process."""
    path, view = Path(directory).expanduser(), tuned.model
    view.meta["key"] = path.name
    registry(view.base)[path.name] = view.names[-1]
    if force or not path.exists():
        save(tuned, path, history=history, overwrite=True)
    return path
