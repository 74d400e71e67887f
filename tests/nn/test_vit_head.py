"""``audiozoo.nn.vit_head``: the re-initialised classification head that AST and PaSST's reset_classifier use."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.nn import vit_head


def test_vit_head_initialisation() -> None:
    torch.manual_seed(0)
    h = vit_head(768, 500)
    assert h.weight.shape == (500, 768) and torch.equal(h.bias, torch.zeros(500))
    # truncated N(0, 0.02): std close to 0.02 over 384k weights, nothing beyond the +-2 truncation bounds
    assert abs(h.weight.std().item() - 0.02) < 1e-3 and h.weight.abs().max().item() <= 2.0


@pytest.mark.parametrize("name", ["ast_tiny", "passt_tiny"])
def test_reset_classifier_changes_the_number_of_classes(name: str) -> None:
    model = audiozoo.create_model(name, **audiozoo.model_info(name).tiny).eval()
    model.reset_classifier(3)
    assert model.num_classes == model.config.num_classes == 3
    assert torch.equal(model.head.bias, torch.zeros(3))
    from audiozoo.models.contracts import example_inputs

    args, kw = example_inputs("classify", model, 64)
    with torch.no_grad():
        assert model(*args, **kw).shape[-1] == 3
