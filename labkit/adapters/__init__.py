"""LoRA adapters for the lab's trainers: one shared base, saved and cached atomically.

Two concepts, one file each: `view` -- adapters injected into one shared base model, each
switched on only inside its tuned LM's calls (`AdapterView`), so the base and every tuned LM
share one copy of the weights; and `files` -- adapter directories (peft's format plus a
manifest), written atomically, checked against their base, and cached by a key of base +
config + data. References (LoRA: Hu et al. 2021, eq. 3) and what was left out are in each.

    tuned, history = lk.sft.finetune(lm, pairs)   # tuned.model is an AdapterView on lm.model
    tuned.model.set_scale(0.5)                    # half the update
    lk.sft.save(tuned, "my-adapter"); lk.load("my-adapter")
"""
from .files import (HISTORY, MANIFEST, PEFT_CONFIG, PEFT_WEIGHTS, attach, base_name, cache_key,
                    cached, check_base, keep, read_manifest, save, state_dict)
from .view import (AdapterView, add, adapter_names, adapter_parameters, base_info, create,
                   delete, fingerprint, free_name, lora_layers, registry, scaled, split,
                   switched_on, trainable, training)

__all__ = ["AdapterView", "HISTORY", "MANIFEST", "PEFT_CONFIG", "PEFT_WEIGHTS", "add",
           "adapter_names", "adapter_parameters", "attach", "base_info", "base_name",
           "cache_key", "cached", "check_base", "create", "delete", "fingerprint", "free_name",
           "keep", "lora_layers", "read_manifest", "registry", "save", "scaled", "split",
           "state_dict", "switched_on", "trainable", "training"]
