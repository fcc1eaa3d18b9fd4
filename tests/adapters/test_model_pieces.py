"""The shared model-side pieces: un-normalisation, action tokens, image preprocessing, device selection."""

from __future__ import annotations

import numpy as np
import pytest

from vlascore.adapters.action_tokens import ActionTokenizer
from vlascore.adapters.normalization import NormStats, pick_stats
from vlascore.adapters.preprocess import ImageSpec, preprocess_image

BRIDGE = {
    "q01": [-0.02, -0.04, -0.03, -0.1, -0.1, -0.2, 0.0],
    "q99": [0.03, 0.04, 0.03, 0.1, 0.1, 0.2, 1.0],
    "mask": [True] * 6 + [False],
}


def test_q99_unnormalisation_by_hand() -> None:
    stats = NormStats.model_validate(BRIDGE)
    out = stats.unnormalize(np.array([-1.0, 1.0, 0.0, 0.5, -0.5, 0.0, 0.7]))
    # 0.5 * (a + 1) * (q99 - q01) + q01 on masked dims; the gripper (mask False) passes through
    np.testing.assert_allclose(out, [-0.02, 0.04, 0.0, 0.05, -0.05, 0.0, 0.7], atol=1e-12)
    np.testing.assert_allclose(stats.normalize(out), [-1.0, 1.0, 0.0, 0.5, -0.5, 0.0, 0.7], atol=1e-12)
    normal = NormStats(kind="normal", mean=[1.0, 2.0], std=[0.5, 2.0])
    np.testing.assert_allclose(normal.unnormalize(np.array([2.0, -1.0])), [2.0, 0.0])


def test_stats_validation_and_key_choice() -> None:
    with pytest.raises(ValueError, match="need q01, q99"):
        NormStats.model_validate({"q01": [0.0]})
    with pytest.raises(ValueError, match="different lengths"):
        NormStats(q01=[0.0, 1.0], q99=[1.0])
    table = {"bridge_orig": {"action": BRIDGE}, "fractal20220817_data": {"action": BRIDGE}}
    assert pick_stats(table, "bridge_orig", "ckpt")[0] == "bridge_orig"
    with pytest.raises(ValueError, match=r"choose one with -M unnorm_key=KEY.*Keys: bridge_orig, fractal"):
        pick_stats(table, None, "ckpt")
    with pytest.raises(ValueError, match="Did you mean 'bridge_orig'"):
        pick_stats(table, "bridge_org", "ckpt")
    assert pick_stats({"only": {"action": BRIDGE}}, None, "ckpt")[0] == "only"


def test_action_tokens_by_hand() -> None:
    tok = ActionTokenizer(vocab_size=1000, bins=256)
    # token 1000 - d decodes to centre d - 1 (clipped to the 255 centres)
    assert tok.decode(np.array([999]))[0] == pytest.approx(tok.centers[0])
    assert tok.decode(np.array([1000 - 255]))[0] == pytest.approx(tok.centers[254])
    assert tok.decode(np.array([5]))[0] == pytest.approx(tok.centers[254])  # far outside: clipped to the last bin
    a = np.linspace(-0.99, 0.99, 11)
    np.testing.assert_allclose(tok.decode(tok.encode(a)), a, atol=2 / 255)
    assert tok.is_action_token(tok.encode(a)).all() and not tok.is_action_token(np.array([10])).any()


def test_image_preprocessing_crop_then_resize() -> None:
    pytest.importorskip("PIL")
    img = np.zeros((100, 100, 3), dtype=np.uint8)
    img[:5] = 255  # a white band at the top: a 0.81-area centre crop (90% per side) cuts it off
    out = np.asarray(preprocess_image(img, ImageSpec(size=(50, 50), center_crop=0.81)))
    assert out.shape == (50, 50, 3) and out.max() == 0
    kept = np.asarray(preprocess_image(img, ImageSpec(size=(50, 50))))
    assert kept[0].min() > 200
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(img.astype(np.float32), ImageSpec())


def test_device_selection_refuses_what_is_not_there() -> None:
    torch = pytest.importorskip("torch")
    from vlascore.adapters.device import select_device, select_dtype

    assert select_device("cpu") == "cpu" and select_dtype("auto", "cpu") == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            select_device("cuda")
        assert select_device("auto") in ("cpu", "mps")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    with pytest.raises(ValueError, match="unknown dtype"):
        select_dtype("float8", "cpu")
