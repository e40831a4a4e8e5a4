"""A package as a Ray Serve deployment: replicas, ``@serve.batch`` batching, KServe v2 over HTTP.

Each replica loads the package once; requests (KServe v2 JSON or binary tensors, checked exactly as
``shipyard serve`` checks them) are joined by ``@serve.batch`` along the batch axis, run in a
worker thread, and split back per request. Mounted at ``/v2/models/<name>``, so
``tritonclient.http`` works against it unchanged.

Example::

    >>> from ray import serve                                                       # doctest: +SKIP
    >>> serve.run(build_app("pkgs/digits", RayOptions(replicas=2)), name="digits",
    ...           route_prefix="/v2/models/digits")                                # doctest: +SKIP

``shipyard export ray DIR --out APP`` writes ``APP/app.py`` for ``serve run``;
``shipyard serve --ray DIR`` starts a local Ray instance and serves until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import BackendUnavailable, UsageError


@dataclass
class RayOptions:
    """Replicas, batching and where Ray Serve's HTTP proxy listens."""

    replicas: int = 1
    max_batch_size: int = 32
    max_queue_delay_ms: float = 2.0
    host: str = "127.0.0.1"
    http_port: int = 8000
    threads: int | None = None
    num_cpus: float = 0.5
    max_request_bytes: int = 64 * 1024 * 1024
    trust_code: bool = False
    """Consent to load a package that carries code (see ``shipyard.package.trust``)."""


def _serve_module() -> Any:
    try:
        from ray import serve
    except ImportError as exc:
        raise BackendUnavailable("Ray Serve is not installed: pip install 'shipyard[ray]'") from exc
    return serve


def build_app(package: str | Path, options: RayOptions | None = None) -> Any:
    """The Ray Serve application of one package, ready for ``serve.run``."""
    from shipyard.package.manifest import read_manifest

    options = options or RayOptions()
    folder = Path(package).resolve()
    name = read_manifest(folder)["name"]
    deployment = _deployment_class(_serve_module(), options)
    return deployment.options(
        name=name, num_replicas=options.replicas, ray_actor_options={"num_cpus": options.num_cpus}
    ).bind(str(folder), options)


def _deployment_class(serve: Any, options: RayOptions) -> Any:
    @serve.deployment
    class ShipyardModel:
        def __init__(self, folder: str, opts: RayOptions) -> None:
            import shipyard
            from shipyard.serve.repository import ModelFace

            self.predictor = shipyard.load(folder, opts.threads, opts.trust_code)
            p = self.predictor
            self.face = ModelFace(
                p.name,
                p.version,
                p.backend,
                p.signature,
                min(opts.max_batch_size, p.max_batch_size),
            )
            self.max_bytes = opts.max_request_bytes
            from shipyard.verify.batchaxis import prove_batch_axis

            self.batched = self.face.batched and prove_batch_axis(p.run, p.signature).batched

        @serve.batch(
            max_batch_size=options.max_batch_size,
            batch_wait_timeout_s=options.max_queue_delay_ms / 1000,
        )
        async def run_batch(self, feeds: list[dict[str, np.ndarray]]) -> list[Any]:
            return await asyncio.to_thread(run_grouped, self.predictor.run, feeds, self.batched)

        async def __call__(self, request: Any) -> Any:
            return await answer(self, request)

    return ShipyardModel


async def answer(replica: Any, request: Any) -> Any:
    """One KServe v2 HTTP request to a replica: metadata, readiness, or inference."""
    from starlette.responses import JSONResponse

    from shipyard.serve.errors import ServeError
    from shipyard.serve.http import decode_checked, encode_response, read_body

    path = request.url.path.rstrip("/")
    if request.method == "GET":
        body = (
            {"name": replica.face.name, "ready": True}
            if path.endswith("/ready")
            else replica.face.metadata()
        )
        return JSONResponse(body)
    try:
        if not path.endswith("/infer"):
            raise UsageError(f"path {path!r} is not an inference endpoint; expected …/infer")
        body = await read_body(request, replica.max_bytes)
        (
            header,
            inputs,
            outputs,
        ) = await asyncio.to_thread(  # parsing never blocks the replica's event loop
            decode_checked,
            replica.face,
            body,
            request.headers.get("inference-header-content-length"),
            replica.max_bytes,
        )
        result = await replica.run_batch(inputs)
        if isinstance(result, Exception):
            raise result
        return encode_response(replica.face, header, result, outputs)
    except ServeError as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except Exception as exc:  # noqa: BLE001 - answer, never crash the replica
        status = 404 if isinstance(exc, UsageError) else 500
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=status)


def run_grouped(run: Any, feeds: list[dict[str, np.ndarray]], batched: bool = True) -> list[Any]:
    """Run feeds joined along the batch axis, one run per group of equal trailing shapes.

    Unless ``batched`` (the model's batch axis proven at load), every feed runs alone; a group
    whose outputs lack one row per sample is rerun feed by feed, never sliced.
    """
    results: list[Any] = [None] * len(feeds)
    groups: dict[tuple, list[int]] = {}
    for index, feed in enumerate(feeds):
        key = tuple((k, v.shape[1:]) for k, v in sorted(feed.items())) if batched else (index,)
        groups.setdefault(key, []).append(index)
    for members in groups.values():
        joined = {k: np.concatenate([feeds[i][k] for i in members]) for k in feeds[members[0]]}
        outputs = _run_one(run, joined)
        sizes = [len(next(iter(feeds[i].values()))) for i in members]
        if isinstance(outputs, Exception) or len(members) == 1:
            for i in members:
                results[i] = outputs
        elif all(np.ndim(v) and len(v) == sum(sizes) for v in outputs.values()):
            starts = np.cumsum([0, *sizes])
            for i, start, size in zip(members, starts, sizes):
                results[i] = {k: v[start : start + size] for k, v in outputs.items()}
        else:
            for i in members:
                results[i] = _run_one(run, feeds[i])
    return results


def _run_one(run: Any, feed: dict[str, np.ndarray]) -> Any:
    from shipyard.errors import DataError
    from shipyard.serve.errors import BadRequest, ServeError

    try:
        return run(feed)
    except Exception as exc:  # noqa: BLE001 - reported to each request it was for
        return (
            BadRequest(str(exc))
            if isinstance(exc, DataError)
            else ServeError(f"model failed: {exc}")
        )


def export_ray(package: str | Path, out: str | Path, options: RayOptions | None = None) -> Path:
    """Write ``out/app.py`` building the Ray Serve app of ``package``; returns its path."""
    from shipyard.package.manifest import read_manifest

    options = options or RayOptions()
    folder = Path(package).resolve()
    name = read_manifest(folder)["name"]
    target = Path(out)
    target.mkdir(parents=True, exist_ok=True)
    app = target / "app.py"
    app.write_text(app_source(folder, name, options))
    return app


def app_source(folder: Path, name: str, options: RayOptions) -> str:
    """The ``app.py`` text: data only as JSON string literals, so no manifest text can become
    code."""
    settings = json.dumps({"package": str(folder), "name": name, "options": asdict(options)})
    return (
        '"""Ray Serve app of a Shipyard package, written by `shipyard export ray`.\n\n'
        'Run: serve run app:app --route-prefix /v2/models/NAME (NAME: SETTINGS["name"])\n"""\n\n'
        "import json\n\nfrom shipyard.export.ray import RayOptions, build_app\n\n"
        f"SETTINGS = json.loads({settings!r})\n"
        'app = build_app(SETTINGS["package"], RayOptions(**SETTINGS["options"]))\n'
    )


def serve_with_ray(packages: list[Path], options: RayOptions) -> None:
    """Start a local Ray instance and serve ``packages`` until interrupted."""
    import ray

    from shipyard.package.manifest import read_manifest

    serve = _serve_module()
    ray.init(include_dashboard=False, ignore_reinit_error=True)
    serve.start(http_options={"host": options.host, "port": options.http_port})
    try:
        for package in packages:
            name = read_manifest(Path(package))["name"]
            serve.run(build_app(package, options), name=name, route_prefix=f"/v2/models/{name}")
            print(
                f"Ray Serve: model {name} at "
                f"http://{options.host}:{options.http_port}/v2/models/{name}",
                flush=True,
            )
        while True:
            time.sleep(1)
    finally:
        serve.shutdown()
        ray.shutdown()
