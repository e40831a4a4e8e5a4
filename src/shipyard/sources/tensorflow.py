"""``tf:DIR`` (a TensorFlow SavedModel) and ``file.keras``: converted to ONNX with tf2onnx.

The SavedModel's ``serving_default`` signature is the model: its input and output names become the
package's, its ``None`` dimensions dynamic axes. A ``.keras`` file is loaded with Keras'
``safe_mode``
(no Python lambdas deserialised) and exported to a SavedModel first, so both forms take one road.
TensorFlow runs the SavedModel for the reference outputs; nothing is unpickled.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

from shipyard.errors import SourceError
from shipyard.sources.base import FrameworkReference, Source, hash_files
from shipyard.sources.conversion import (
    captured_output,
    converted_dir,
    finish_onnx,
    log_tail,
    onnx_file_signature,
    publish,
    work_dir,
)
from shipyard.sources.torch_factory import guess_task

OPSET = 17
INSTALL = "pip install 'shipyard[tf]'"
SERVING_KEY = "serving_default"


def import_tensorflow(threads: int | None = None):
    """TensorFlow with its C++ chatter off and, on first use, ``threads`` for its pools."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _load_triton_first()
    with captured_output():  # absl prints before TF_CPP_MIN_LOG_LEVEL is read
        import tensorflow as tf

    if threads:
        try:  # only possible before the runtime starts; later sessions share the first one's pools
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    return tf


def load_tensorflow_source(path: Path) -> Source:
    """A Source for the SavedModel folder or ``.keras`` file at ``path``."""
    keras_file = path.suffix == ".keras"
    _check_path(path, keras_file)
    versions = _versions()
    content_hash = hash_files(path, extra="keras" if keras_file else "savedmodel")
    folder = _convert(path, keras_file, content_hash, versions)
    saved_model = folder / "saved_model" if keras_file else path
    signature = onnx_file_signature(folder / "model.onnx")
    reference = FrameworkReference(
        "tensorflow", f"TensorFlow {versions['tensorflow']}", (saved_model,)
    )
    return Source(
        name=path.stem if keras_file else path.resolve().name,
        kind="onnx",
        signature=signature,
        content_hash=content_hash,
        task=guess_task(signature),
        path=folder / "model.onnx",
        reference=reference,
        notes=[
            f"converted from TensorFlow with tf2onnx {versions['tf2onnx']} (opset {OPSET}); "
            f"verified against TensorFlow {versions['tensorflow']}"
        ],
    )


def _load_triton_first() -> None:
    """Load torch's Triton compiler library before TensorFlow, if it is installed.

    Both carry their own LLVM; loading Triton's after TensorFlow's segfaults the process
    (transformers
    and torch.compile load it lazily, so a build that touched TensorFlow would crash later), while
    the other order works.
    """
    if "tensorflow.python" in sys.modules or importlib.util.find_spec("triton") is None:
        return  # TensorFlow's runtime is in already (too late), or there is no Triton to order
    try:
        importlib.import_module("triton._C.libtriton")
    except (
        Exception
    ):  # a broken Triton is torch's business, not a reason to refuse a TensorFlow model
        pass


def _check_path(path: Path, keras_file: bool) -> None:
    if keras_file and not path.is_file():
        raise SourceError(f"Keras file {str(path)!r} does not exist")
    if not keras_file and not (path / "saved_model.pb").is_file():
        raise SourceError(
            f"tf:{path} is not a TensorFlow SavedModel; expected a folder with saved_model.pb "
            f"(tf.saved_model.save or keras Model.export write one) or a .keras file"
        )


def _versions() -> dict[str, str]:
    versions = {}
    for module, packages in (
        ("tensorflow", ("tensorflow-cpu", "tensorflow")),
        ("tf2onnx", ("tf2onnx",)),
    ):
        for package in packages:
            try:
                versions[module] = importlib.metadata.version(package)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        else:
            raise SourceError(f"TensorFlow models need {module}: {INSTALL}")
    return versions


def _convert(path: Path, keras_file: bool, content_hash: str, versions: dict[str, str]) -> Path:
    folder, done = converted_dir(
        "tensorflow", content_hash, f"tf{versions['tensorflow']}-t2o{versions['tf2onnx']}"
    )
    if done:
        return folder
    work = work_dir(folder)
    saved_model = _export_keras(path, work / "saved_model") if keras_file else path
    target = work / "model.onnx"
    with captured_output() as log:
        try:
            _tf2onnx(saved_model, target)
            error = None
        except Exception as exc:  # tf2onnx raises whatever TensorFlow or its handlers raise
            error = exc
    if error is not None:
        detail = log_tail(log, keep=("Unsupported", "unsupported", "ERROR"))
        raise SourceError(
            f"tf2onnx cannot convert {path}: {type(error).__name__}: {str(error)[:300]}"
            f"{'; ' + detail if detail else ''}"
        ) from error
    finish_onnx(target)
    return publish(work, folder)


def _export_keras(path: Path, out: Path) -> Path:
    import_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(str(path), safe_mode=True, compile=False)
        with captured_output():
            model.export(str(out), format="tf_saved_model", verbose=False)
    except Exception as exc:
        raise SourceError(
            f"cannot load {path} with Keras {keras.__version__} (safe mode) and export it: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return out


def _tf2onnx(saved_model: Path, target: Path) -> None:
    import_tensorflow()
    import tf2onnx
    from tf2onnx import tf_loader

    graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
        str(saved_model),
        None,
        None,
        tag="serve",
        signatures=[SERVING_KEY],
        return_tensors_to_rename=True,
    )
    # renames map graph tensors (features:0, Identity:0) to the signature's names (features,
    # output_0)
    tf2onnx.convert.from_graph_def(
        graph_def,
        input_names=inputs,
        output_names=outputs,
        opset=OPSET,
        output_path=str(target),
        tensors_to_rename=renames,
    )
