"""WinCLIP prompt ensemble: sentence counts, class directions and probabilities checked by hand."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from inspectd.method.prompts import (
    ANOMALOUS_STATES,
    NORMAL_STATES,
    TEMPLATES,
    anomaly_probability,
    class_embeddings,
    compositional_prompts,
    prompt_key,
)


def test_prompt_lists_follow_winclip() -> None:
    assert len(NORMAL_STATES) == 7 and len(ANOMALOUS_STATES) == 4
    assert len(TEMPLATES) == len(set(TEMPLATES)) == 22
    assert "a photo of the {} for visual inspection." in TEMPLATES
    assert all(s.count("{}") == 1 for s in [*NORMAL_STATES, *ANOMALOUS_STATES, *TEMPLATES])


def test_compositional_prompts_are_every_state_in_every_template() -> None:
    normal, anomalous = compositional_prompts(" screw ")
    assert len(normal) == len(NORMAL_STATES) * len(TEMPLATES) == 154
    assert len(anomalous) == len(ANOMALOUS_STATES) * len(TEMPLATES) == 88
    assert len(set(normal)) == len(normal) and len(set(anomalous)) == len(anomalous)
    assert all("screw" in p and "{" not in p for p in normal + anomalous)
    assert normal[0] == "a cropped photo of the screw."
    assert "a photo of the flawless screw for visual inspection." in normal
    assert "a photo of a screw with defect for anomaly detection." in anomalous
    assert not set(normal) & set(anomalous)


def test_compositional_prompts_refuse_empty_noun() -> None:
    with pytest.raises(ValueError, match="object"):
        compositional_prompts("  ")


def test_class_embeddings_normalise_average_normalise() -> None:
    normal = np.array([[2.0, 0.0], [0.0, 3.0]])  # unit rows (1, 0), (0, 1) -> mean (.5, .5)
    anomalous = np.array([[0.0, -5.0]])
    classes = class_embeddings(normal, anomalous)
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(classes, np.array([[r, r], [0.0, -1.0]]), rtol=1e-6)


def test_class_embeddings_weigh_each_prompt_equally_whatever_its_norm() -> None:
    normal = np.array([[100.0, 0.0], [0.0, 1.0]])
    classes = class_embeddings(normal, np.array([[1.0, 0.0]]))
    assert classes[0, 0].item() == pytest.approx(classes[0, 1].item())
    assert np.linalg.norm(classes, axis=1).tolist() == pytest.approx([1.0, 1.0])


def test_class_embeddings_refuse_mismatched_widths() -> None:
    with pytest.raises(ValueError, match="width"):
        class_embeddings(np.ones((3, 4)), np.ones((2, 5)))


def test_anomaly_probability_hand_computed_2d() -> None:
    classes = np.array([[1.0, 0.0], [0.0, 1.0]])
    images = np.array([[0.0, 2.0], [3.0, 4.0], [1.0, 1.0], [5.0, 0.0]])
    probs = anomaly_probability(images, classes, logit_scale=10.0)
    # cos to (normal, anomalous): (0, 1), (.6, .8), (r, r), (1, 0); p = sigmoid(10 * (c1 - c0))
    expected = [1 / (1 + math.exp(-10)), 1 / (1 + math.exp(-2)), 0.5, 1 / (1 + math.exp(10))]
    assert probs.shape == (4,)
    assert probs.tolist() == pytest.approx(expected, rel=1e-5)


def test_anomaly_probability_image_equal_to_anomalous_class_is_above_half() -> None:
    generator = np.random.default_rng(0)
    classes = class_embeddings(generator.standard_normal((5, 8)), generator.standard_normal((3, 8)))
    p = anomaly_probability(classes[1] * 7.0, classes, logit_scale=1.0)
    cos_normal = float(classes[0] @ classes[1])
    assert p.shape == (1,)
    assert float(p[0]) == pytest.approx(1 / (1 + math.exp(-(1.0 - cos_normal))), rel=1e-5)
    assert float(p[0]) > 0.5


def test_anomaly_probability_refuses_mismatched_width() -> None:
    with pytest.raises(ValueError, match="same CLIP model"):
        anomaly_probability(np.ones((2, 3)), np.ones((2, 4)), 100.0)


def test_prompt_key_is_sha256_of_canonical_json() -> None:
    key = prompt_key("clip@abc", ["a", "b"])
    assert key == hashlib.sha256(b'{"model":"clip@abc","prompts":["a","b"]}').hexdigest()
    assert key == prompt_key("clip@abc", ["a", "b"])
    assert len(key) == 64 and int(key, 16) >= 0


def test_prompt_key_changes_with_model_order_and_boundaries() -> None:
    base = prompt_key("m", ["a", "b"])
    assert base != prompt_key("m2", ["a", "b"])
    assert base != prompt_key("m", ["b", "a"])
    assert prompt_key("ab", ["c"]) != prompt_key("a", ["bc"])
    assert prompt_key("m", ["a,b"]) != prompt_key("m", ["a", "b"])
