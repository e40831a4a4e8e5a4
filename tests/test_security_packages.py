"""Hostile folders, manifests and packages: nothing outside the package is read, written or deleted,
and code inside a package runs only with consent."""

from __future__ import annotations

import ast
import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tiny_packages import linear_package, rows, text_package

import shipyard
from shipyard.errors import PackageError, UsageError
from shipyard.package.outdir import check_out_dir, is_package
from shipyard.package.trust import UntrustedPackage, pt2_pickles, seal


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def _project(folder: Path) -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "main.py").write_text("print('mine')\n")
    (folder / "notes.txt").write_text("do not delete\n")
    return folder


def _edit(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


# --- --force and --out
# --------------------------------------------------------------------------------------


def test_force_on_a_folder_that_is_not_a_package_leaves_every_file_in_place(tmp_path):
    from shipyard.cli.main import main

    project = _project(tmp_path / "project")
    before = _files(project)
    assert main(["build", "example:digits", "--out", str(project), "--force"]) != 0
    assert _files(project) == before


def test_force_refuses_another_tools_manifest_json(tmp_path):
    folder = _project(tmp_path / "extension")
    (folder / "manifest.json").write_text(json.dumps({"name": "my-extension", "version": "1.0"}))
    with pytest.raises(UsageError, match="not a Shipyard package"):
        check_out_dir(folder, force=True)


@pytest.mark.parametrize("where", ["home", "cwd"])
def test_force_refuses_the_home_folder_and_the_working_directory(tmp_path, monkeypatch, where):
    folder = linear_package(tmp_path / "pkg")  # even when it looks like a package
    monkeypatch.setenv("HOME", str(folder)) if where == "home" else monkeypatch.chdir(folder)
    with pytest.raises(UsageError, match="home folder" if where == "home" else "working directory"):
        check_out_dir(folder, force=True)
    assert (folder / "manifest.json").is_file()


def test_force_refuses_a_symlink_and_keeps_its_target(tmp_path):
    target = linear_package(tmp_path / "real")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    before = _files(target)
    with pytest.raises(UsageError, match="symlink"):
        check_out_dir(link, force=True)
    assert _files(target) == before


def test_force_refuses_a_folder_holding_the_builds_input(tmp_path):
    from shipyard.package.outdir import build_inputs

    folder = linear_package(tmp_path / "pkg")
    model = folder / "model" / "model.onnx"
    with pytest.raises(UsageError, match="input"):
        check_out_dir(folder, True, build_inputs(str(model)))
    with pytest.raises(UsageError, match="input"):  # an ancestor of the data
        check_out_dir(tmp_path, True, build_inputs("example:digits", folder / "model"))


def test_force_replaces_an_old_package_named_like_the_example_it_was_built_from(
    tmp_path, monkeypatch
):
    from shipyard.package.outdir import build_inputs

    folder = linear_package(tmp_path / "digits")
    monkeypatch.chdir(tmp_path)  # "digits" is a folder here: example:digits still names no path
    assert build_inputs("example:digits") == []
    check_out_dir(Path("digits"), True, build_inputs("example:digits"))
    assert is_package(folder)


def test_force_replaces_an_old_package_readable_by_everyone(tmp_path):
    from shipyard.package.writer import _swap_into_place, make_readable

    old = linear_package(tmp_path / "pkg", name="old")
    check_out_dir(old, force=True)  # allowed: it holds a Shipyard manifest
    staging = linear_package(tmp_path / ".pkg.staging", name="new")
    make_readable(staging)
    _swap_into_place(staging, old)
    assert shipyard.load(old).name == "new"
    assert stat.S_IMODE(old.stat().st_mode) == 0o755
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o644 for p in old.rglob("*") if p.is_file())


# --- the manifest
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["../outside.onnx", "/etc/hostname", "model/../../outside.onnx", "model\\model.onnx"]
)
def test_a_model_path_outside_the_package_is_refused(tmp_path, path):
    folder = linear_package(tmp_path / "pkg")
    (tmp_path / "outside.onnx").write_bytes((folder / "model" / "model.onnx").read_bytes())
    _edit(folder, model_file=path)
    with pytest.raises(PackageError, match="leaves the package|not allowed"):
        shipyard.load(folder)


def test_a_tokenizer_path_outside_the_package_is_refused_and_nothing_is_exported(tmp_path):
    from shipyard.export.triton import export_triton

    folder = text_package(tmp_path / "pkg")
    manifest = json.loads((folder / "manifest.json").read_text())
    _edit(folder, text={**manifest["text"], "tokenizer": "/etc/passwd"})
    with pytest.raises(PackageError, match="leaves the package"):
        export_triton(folder, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize(
    "field,value",
    [
        ("version", "../../home"),
        ("version", "1/../../x"),
        ("name", "../escape"),
        ("name", 'x"""; import os #'),
        ("name", "a b"),
    ],
)
def test_names_and_versions_that_are_paths_or_code_are_refused(tmp_path, field, value):
    from shipyard.export.triton import export_triton

    folder = linear_package(tmp_path / "pkg")
    _edit(folder, **{field: value})
    with pytest.raises(PackageError, match=f"{field} .* is not allowed"):
        export_triton(folder, tmp_path / "repo" / "inner")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_a_tensor_name_with_a_quote_is_refused(tmp_path):
    folder = linear_package(tmp_path / "pkg")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["model_signature"]["outputs"][0]["name"] = 'y" } ] backend: "python'
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="outputs name"):
        shipyard.load(folder)


def test_the_ray_app_holds_the_manifest_name_only_as_data(tmp_path):
    from shipyard.export.ray import RayOptions, app_source

    name = 'evil"""\nimport os; os.system("touch PWNED")\n"""'
    tree = ast.parse(app_source(tmp_path, name, RayOptions()))
    kinds = [type(node).__name__ for node in tree.body]
    assert kinds == ["Expr", "Import", "ImportFrom", "Assign", "Assign"]
    settings = json.loads(
        tree.body[3].value.args[0].value
    )  # SETTINGS = json.loads("<one string literal>")
    assert settings["name"] == name and "PWNED" not in ast.get_docstring(tree)


def test_a_symlink_inside_the_package_is_refused(tmp_path):
    folder = linear_package(tmp_path / "pkg")
    secret = tmp_path / "secret.onnx"
    (folder / "model" / "model.onnx").rename(secret)
    (folder / "model" / "model.onnx").symlink_to(secret)
    with pytest.raises(PackageError, match="symlink"):
        shipyard.load(folder)


@pytest.mark.parametrize("tamper", ["change", "add", "remove", "no digests"])
def test_a_package_whose_files_differ_from_its_digests_is_refused(tmp_path, tamper):
    folder = text_package(tmp_path / "pkg")
    if tamper == "change":
        tokenizer = json.loads((folder / "tokenizer.json").read_text())
        tokenizer["model"]["vocab"]["hello"] = 5
        (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    elif tamper == "add":
        (folder / "model" / "model.onnx.data").write_bytes(b"\0" * 16)
    elif tamper == "remove":
        (folder / "tokenizer.json").unlink()
    else:
        _edit(folder, digests=None)
    with pytest.raises(
        PackageError, match="changed after the build|added|missing|lacks|no file digests"
    ):
        shipyard.load(folder)


# --- code inside a package
# ----------------------------------------------------------------------------------


def test_a_package_carrying_python_needs_consent_and_says_so(tmp_path):
    folder = linear_package(tmp_path / "pkg")
    (folder / "model" / "custom_op.py").write_text("raise SystemExit('must not run')\n")
    manifest = seal(folder, json.loads((folder / "manifest.json").read_text()))
    assert manifest["carries_code"][0]["file"] == "model/custom_op.py"
    with pytest.raises(UntrustedPackage, match="trust_code=True"):
        shipyard.load(folder)
    predictor = shipyard.load(folder, trust_code=True)  # the model itself is plain ONNX
    np.testing.assert_allclose(predictor.run({"x": rows(0)})["y"], 2 * rows(0) + 1, rtol=1e-6)


def test_serving_a_package_that_carries_code_needs_trust_package(tmp_path):
    from shipyard.serve import ServeOptions, Server, ServerConfig

    folder = linear_package(tmp_path / "pkg")
    (folder / "model" / "kernels.so").write_bytes(b"\x7fELF")
    seal(folder, json.loads((folder / "manifest.json").read_text()))
    with pytest.raises(UntrustedPackage, match="--trust-package"):
        Server([folder], ServerConfig(http_port=0, grpc_port=None))
    Server([folder], ServerConfig(http_port=0, grpc_port=None), ServeOptions(trust_code=True))


def _torch_package(folder: Path) -> Path:
    import torch

    (folder / "model").mkdir(parents=True)
    program = torch.export.export(
        torch.nn.Linear(3, 2).eval(),
        (torch.randn(2, 3),),
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )
    torch.export.save(program, str(folder / "model" / "model.pt2"))
    specs = {"x": ["batch", 3], "y": ["batch", 2]}
    tensors = {
        n: {"name": n, "datatype": "FP32", "dtype": "float32", "shape": [-1, d[1]], "dims": d}
        for n, d in specs.items()
    }
    manifest = {
        "format_version": 1,
        "name": "torchy",
        "version": 1,
        "backend": "torch",
        "artifact_format": "torch-export",
        "model_file": "model/model.pt2",
        "files": ["model/model.pt2"],
        "inputs": [tensors["x"]],
        "outputs": [tensors["y"]],
        "threads": 1,
    }
    seal(folder, manifest)
    return folder


class _Marker:
    """Unpickling this would create a file: proof that a pickle ran."""

    path = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_torch_program_loads_without_pickle_and_a_pickled_one_needs_consent(tmp_path):
    import pickle

    folder = _torch_package(tmp_path / "pkg")
    assert pt2_pickles(folder / "model" / "model.pt2") == []  # plain tensors are stored raw
    assert shipyard.load(folder).run({"x": rows(1, 2)})["y"].shape == (2, 2)

    _Marker.path = str(tmp_path / "PWNED")
    archive = folder / "model" / "model.pt2"
    hostile = tmp_path / "hostile.pt2"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(hostile, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if "sample_inputs" in item.filename:
                data = pickle.dumps(_Marker())
            target.writestr(item, data)
    hostile.replace(archive)
    seal(folder, json.loads((folder / "manifest.json").read_text()))
    with pytest.raises(UntrustedPackage, match="pickle"):
        shipyard.load(folder)
    assert not Path(_Marker.path).exists()
