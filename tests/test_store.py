"""ModelStore on tiny random models: lazy single loads, folder resolution, the text-feature cache, describe."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import structlog
import torch

from inspectd.config import ModelsConfig, PipelineConfig
from inspectd.errors import ModelLoadError, ModelNotFoundError
from inspectd.method.prompts import prompt_key
from inspectd.models.clip import Clip
from inspectd.models.clipseg import ClipSeg
from inspectd.models.random_init import clip_config, clipseg_config, init_random, sam_config
from inspectd.models.sam import SamMasker, build_sam_from_config
from inspectd.models.store import ModelStore, resolve_model_path

PROMPTS = ["a photo of a flawless object", "a photo of a damaged object"]


def _store(models_dir: Path, cache: Path, *, text_cache: bool = True, **models) -> ModelStore:
    config = ModelsConfig(dir=models_dir, cache_dir=cache, device="cpu", sam_points_per_side=4, **models)
    return ModelStore(config, PipelineConfig(text_cache=text_cache))


def test_text_features_cached_in_memory_and_on_disk(tiny_models_dir: Path, tmp_path: Path) -> None:
    store = _store(tiny_models_dir, tmp_path)
    first = store.text_features("clipseg", PROMPTS)
    key = prompt_key(store.clipseg().model_id, PROMPTS)
    on_disk = tmp_path / "text" / f"{key}.pt"
    assert on_disk.is_file() and store.text_encodes == 1
    torch.testing.assert_close(torch.load(on_disk, weights_only=True), first)
    torch.testing.assert_close(first, store.clipseg().encode_text(PROMPTS))

    assert store.text_features("clipseg", PROMPTS) is first
    assert store.text_encodes == 1

    changed = store.text_features("clipseg", [*PROMPTS, "a photo of a scratched object"])
    assert store.text_encodes == 2 and changed.shape == (3, first.shape[1])
    reordered = store.text_features("clipseg", PROMPTS[::-1])
    assert store.text_encodes == 3
    torch.testing.assert_close(reordered, first.flip(0))

    restarted = _store(tiny_models_dir, tmp_path)
    again = restarted.text_features("clipseg", PROMPTS)
    assert restarted.text_encodes == 0
    torch.testing.assert_close(again, first)


def test_text_cache_off_recomputes_every_call(tiny_models_dir: Path, tmp_path: Path) -> None:
    store = _store(tiny_models_dir, tmp_path, text_cache=False)
    store.text_features("clipseg", PROMPTS)
    store.text_features("clipseg", PROMPTS)
    assert store.text_encodes == 2
    assert not (tmp_path / "text").exists()


def test_corrupt_cache_file_is_recomputed_and_logged(tiny_models_dir: Path, tmp_path: Path) -> None:
    store = _store(tiny_models_dir, tmp_path)
    key = prompt_key(store.clipseg().model_id, PROMPTS)
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / f"{key}.pt").write_bytes(b"not a tensor")
    with structlog.testing.capture_logs() as logs:
        features = store.text_features("clipseg", PROMPTS)
    assert store.text_encodes == 1 and features.shape[0] == 2
    assert any(e["event"] == "text_cache_unreadable" for e in logs)


def test_clip_defaults_to_clipseg_and_separate_clip_loads(tiny_models_dir: Path, tmp_path: Path) -> None:
    shared = _store(tiny_models_dir, tmp_path)
    assert shared.clip() is shared.clipseg()
    separate = _store(tiny_models_dir, tmp_path, clip="clip")
    clip = separate.clip()
    assert isinstance(clip, Clip) and clip is not separate._loaded.get("clipseg")
    features = separate.text_features("clip", PROMPTS)
    assert features.shape == (2, 32)
    assert separate.text_features("clipseg", PROMPTS).shape == (2, 32)
    assert separate.text_encodes == 2  # different model ids: different cache keys


def test_concurrent_first_use_loads_once(tiny_models_dir: Path, tmp_path: Path) -> None:
    store = _store(tiny_models_dir, tmp_path)
    barrier = threading.Barrier(4)
    got: list[ClipSeg] = []

    def ask() -> None:
        barrier.wait()
        got.append(store.clipseg())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(m is got[0] for m in got)
    assert store.load_counts["clipseg"] == 1


def test_random_model_logs_warning_and_describe_marks_it(tiny_models_dir: Path, tmp_path: Path) -> None:
    store = _store(tiny_models_dir, tmp_path)
    assert store.describe() == {}
    with structlog.testing.capture_logs() as logs:
        clipseg = store.clipseg()
        sam = store.sam()
    warnings = [e for e in logs if e["event"] == "random_weights"]
    assert {e["model"] for e in warnings} == {"clipseg", "sam"}
    assert all(e["log_level"] == "warning" for e in warnings)
    assert isinstance(sam, SamMasker)
    assert store.describe() == {"clipseg": f"{clipseg.model_id}+random", "sam": f"{sam.model_id}+random"}
    assert store.describe()["clipseg"].startswith("clipseg@")


def test_missing_model_names_path_and_commands(tmp_path: Path) -> None:
    store = _store(tmp_path / "models", tmp_path / "cache")
    for ask, name in ((store.clipseg, "clipseg"), (store.sam, "sam")):
        with pytest.raises(ModelNotFoundError) as err:
            ask()
        message = str(err.value)
        assert str(tmp_path / "models" / name) in message
        assert "inspectd models pull" in message and "inspectd models init-random" in message


def test_absolute_path_and_hub_id_resolution(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    (models_dir / "clipseg").mkdir(parents=True)
    assert resolve_model_path(models_dir, "clipseg", hub_ok=True) == models_dir / "clipseg"
    assert resolve_model_path(models_dir, "/opt/weights/clipseg", hub_ok=True) == Path("/opt/weights/clipseg")
    assert (
        resolve_model_path(models_dir, "CIDAS/clipseg-rd64-refined", hub_ok=True)
        == "CIDAS/clipseg-rd64-refined"
    )
    assert resolve_model_path(models_dir, "CIDAS/clipseg-rd64-refined", hub_ok=False) == (
        models_dir / "CIDAS/clipseg-rd64-refined"
    )


def test_unreachable_hub_id_is_model_not_found(tmp_path: Path) -> None:
    store = _store(tmp_path / "models", tmp_path / "cache", clipseg="nobody/no-such-clipseg")
    with pytest.raises(ModelNotFoundError, match=r"nobody/no-such-clipseg.*inspectd models pull"):
        store.clipseg()


@pytest.mark.slow
def test_all_four_models_and_warmup(models_dir: Path, tmp_path: Path) -> None:
    store = _store(models_dir, tmp_path)
    store.clipseg(), store.sam(), store.isnet()
    assert set(store.describe()) == {"clipseg", "sam", "isnet"}
    assert store.describe()["isnet"].startswith("isnet@") and not store.describe()["isnet"].endswith(
        "+random"
    )
    store.warmup()


def test_init_random_writes_marked_folders_and_refuses_real_weights(tmp_path: Path) -> None:
    written = init_random(tmp_path, "tiny", which=["sam"])
    assert written == [tmp_path / "sam"]
    assert "RANDOM weights" in (tmp_path / "sam" / "RANDOM_WEIGHTS").read_text()
    assert json.loads((tmp_path / "sam" / "sam_config.json").read_text())["encoder_embed_dim"] == 32
    init_random(tmp_path, "tiny", which=["sam"])  # random folders may be rewritten

    real = tmp_path / "clipseg"
    real.mkdir()
    (real / "model.safetensors").write_bytes(b"real weights")
    with pytest.raises(ModelLoadError, match=r"clipseg holds real weights"):
        init_random(tmp_path, "tiny")
    assert (real / "model.safetensors").read_bytes() == b"real weights"
    assert (tmp_path / "sam" / "RANDOM_WEIGHTS").exists()  # the refusal happens before anything is written
    with pytest.raises(ValueError, match="unknown model kind"):
        init_random(tmp_path, "tiny", which=["isnet"])


def test_tiny_clipseg_config_mirrors_the_released_layout() -> None:
    tiny, full = clipseg_config("tiny"), clipseg_config("full")
    assert (tiny.vision_config.patch_size, tiny.vision_config.image_size) == (16, 224)
    assert tiny.text_config.vocab_size == full.text_config.vocab_size == 49408
    assert tiny.use_complex_transposed_convolution and full.use_complex_transposed_convolution
    assert full.extract_layers == [3, 6, 9] and full.reduce_dim == 64 and full.projection_dim == 512
    assert (full.vision_config.hidden_size, full.vision_config.num_hidden_layers) == (768, 12)
    assert full.text_config.hidden_size == 512


@pytest.mark.slow
def test_full_size_architectures_build() -> None:
    from transformers import CLIPModel, CLIPSegForImageSegmentation

    def count(model: torch.nn.Module) -> int:
        return sum(p.numel() for p in model.parameters())

    assert count(CLIPSegForImageSegmentation(clipseg_config("full"))) == 150_747_746  # CIDAS rd64-refined
    assert count(build_sam_from_config(sam_config("full"))) == 93_735_472  # sam_vit_b_01ec64
    assert count(CLIPModel(clip_config("full"))) == 149_620_737  # openai ViT-B/16
