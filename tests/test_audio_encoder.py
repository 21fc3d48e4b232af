"""``encoders.audio``: the orthonormal projection keeps cosine similarity, and ``AudioEncoder`` gives unit-length
vectors that match for the same speech (path or samples, louder and noisier) and differ from noise."""

import numpy as np
import pytest
import soundfile

from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def encoder(loader):
    from encoders.audio import AudioEncoder

    return AudioEncoder(embed_dim=768, loader=loader)


def test_projection_keeps_cosine_similarity():
    import torch

    from encoders.audio import orthonormal_projection

    projection = orthonormal_projection(384, 768, seed=0)
    a, b = torch.randn(384), torch.randn(384)
    before = torch.nn.functional.cosine_similarity(a, b, dim=0)
    after = torch.nn.functional.cosine_similarity(a @ projection, b @ projection, dim=0)
    assert after == pytest.approx(before.item(), abs=1e-5)
    assert torch.equal(projection, orthonormal_projection(384, 768, seed=0))  # the same in every process


@pytest.mark.slow
def test_embedding_shape_and_meaning(encoder):
    import torch

    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    vector = encoder(str(SAMPLE))
    assert vector.shape == (768,) and vector.norm().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(encoder(speech), vector, atol=1e-5)  # samples and path agree

    rng = np.random.default_rng(0)
    louder_noisier = np.clip(speech * 1.5 + rng.standard_normal(len(speech)).astype(np.float32) * 0.003, -1, 1)
    noise = rng.standard_normal(len(speech)).astype(np.float32) * 0.1
    same = torch.dot(vector, encoder(louder_noisier)).item()
    different = torch.dot(vector, encoder(noise)).item()
    assert same > 0.9 and same > different + 0.1

    batch = encoder(torch.from_numpy(np.stack([speech, noise])))
    assert batch.shape == (2, 768)
