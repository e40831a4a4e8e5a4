"""Pre- and post-processing inside the package: image bytes in, answers out.

config.py       the ``--preprocess`` JSON: image resize/crop/normalise/layout, post kind
decode.py       JPEG/PNG bytes → RGB pixels (PIL; the only Python step)
image_graph.py  pixels → model tensor, as an ONNX graph (Resize, Slice, Sub, Div…)
post_graph.py   softmax + top-k, L2 normalisation, as ONNX graphs
detect.py       box decoding + NonMaxSuppression for detectors, as an ONNX graph
package.py      writing the graphs into a package and its manifest
runtime.py      running them around the model (``Predictor`` uses it)
reference.py    the same pipeline in PyTorch, to verify a package against
"""

from shipyard.processing.config import ImagePre, PostProcess, ProcessingConfig, load_config

__all__ = ["ImagePre", "PostProcess", "ProcessingConfig", "load_config"]
