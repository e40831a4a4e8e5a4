"""AOTInductor: torch.export → a compiled ``.pt2`` package, loadable from Python and (per the
manifest) C++."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
@pytest.mark.backend("torch")
def test_aoti_package_matches_the_source_at_any_batch(small_cnn, tmp_path):
    import torch

    from shipyard.backends import get_backend
    from shipyard.backends.aoti.convert import LIBTORCH_NOTE
    from shipyard.inputs import hints_from_npz
    from shipyard.sources import load_source
    from shipyard.workshop import Workshop

    source = load_source(
        f"{small_cnn['model']}:make", small_cnn["weights"], hints_from_npz(small_cnn["data"]), None
    )
    (plan,) = get_backend("aoti").plans(source, "fp32")
    artifact = Workshop(source, tmp_path).make(plan.recipe)
    assert artifact.format == "aoti" and artifact.path.suffix == ".pt2"
    images = np.load(small_cnn["data"])["image"][:6]
    with torch.no_grad():
        expected = source.module(torch.from_numpy(images)).numpy()
    session = get_backend("aoti").load(artifact, threads=1)
    (name,) = source.signature.output_names
    np.testing.assert_allclose(session.run({"image": images})[name], expected, rtol=1e-4, atol=1e-4)
    assert session.run({"image": images[:1]})[name].shape == (1, 4)
    assert (
        "AOTIModelPackageLoader" in LIBTORCH_NOTE["aoti"]
        and "torch::jit::load" in LIBTORCH_NOTE["torchscript"]
    )
