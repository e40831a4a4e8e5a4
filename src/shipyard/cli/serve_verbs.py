"""``shipyard serve``, ``shipyard loadtest`` and ``shipyard export triton|ray``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shipyard.cli.args import instance_count, positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve", help="serve packages over KServe v2 HTTP and gRPC (Triton-compatible)"
    )
    serve.add_argument(
        "packages", nargs="+", type=Path, metavar="DIR", help="package folders to serve"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument(
        "--grpc-port",
        type=int,
        default=8001,
        help="gRPC port (default 8001; -1 turns gRPC off; 0 picks a free one, as --http-port 0)",
    )
    _add_batch_options(serve, "auto")
    serve.add_argument(
        "--lone-request-waits",
        action="store_true",
        help="a request alone in a quiet queue waits the queue delay for company too, as Triton's "
        "dynamic batcher does (default: it runs at once)",
    )
    serve.add_argument(
        "--max-request-mb", type=positive_float, default=64, help="request size limit (default 64)"
    )
    serve.add_argument(
        "--max-inflight-mb",
        type=positive_float,
        default=256,
        help="request bytes held at once across the server, then 503 (default 256)",
    )
    serve.add_argument(
        "--max-connections",
        type=positive_int,
        default=256,
        help="open HTTP connections / gRPC calls before 503 (default 256)",
    )
    serve.add_argument(
        "--header-timeout",
        type=positive_float,
        default=10,
        help="seconds a connection may take to send its request headers (default 10)",
    )
    serve.add_argument(
        "--body-timeout",
        type=positive_float,
        default=60,
        help="seconds a request may take to send its body (default 60)",
    )
    serve.add_argument(
        "--threads",
        type=positive_int,
        help="runtime threads per instance (default: measured with --instances auto, else the "
        "package's)",
    )
    serve.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="serving processes sharing both ports, each with its own models, batcher and limits "
        "(default 1; more helps small models, whose requests cost more than their batches)",
    )
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not print a JSON line per request"
    )
    serve.add_argument(
        "--ray", action="store_true", help="serve with Ray Serve instead (one package, HTTP JSON)"
    )
    serve.add_argument(
        "--replicas", type=positive_int, default=1, help="Ray Serve replicas (with --ray)"
    )
    _add_trust_option(serve)
    serve.set_defaults(run=run_serve)

    load = sub.add_parser(
        "loadtest", help="closed-loop load test of a local KServe v2 server (like perf_analyzer)"
    )
    load.add_argument("url", help="http://127.0.0.1:8000 or grpc://127.0.0.1:8001 (loopback only)")
    load.add_argument("--model", required=True, help="model name on the server")
    load.add_argument(
        "--concurrency", type=positive_int, default=16, help="requests in flight (default 16)"
    )
    load.add_argument(
        "--duration", type=positive_float, default=10, help="seconds to measure (default 10)"
    )
    load.add_argument(
        "--batch", type=positive_int, default=1, help="samples per request (default 1)"
    )
    load.add_argument(
        "--max-requests",
        type=positive_int,
        default=100_000,
        help="stop after this many (default 100000)",
    )
    load.add_argument(
        "--warmup", type=positive_float, default=1, help="seconds before measuring (default 1)"
    )
    load.set_defaults(run=run_loadtest)

    export = sub.add_parser("export", help="export a package to Triton or Ray Serve")
    export.add_argument(
        "engine",
        choices=["triton", "ray"],
        help="triton: a model repository; ray: a Serve app file",
    )
    export.add_argument("package", type=Path, metavar="DIR", help="package folder")
    export.add_argument(
        "--out", type=Path, required=True, help="repository folder (triton) or app folder (ray)"
    )
    _add_batch_options(export, "1")
    export.add_argument("--replicas", type=positive_int, default=1, help="Ray Serve replicas (ray)")
    _add_trust_option(export)
    export.add_argument(
        "--python-backend",
        action="store_true",
        help="triton: run the package through Triton's Python backend even where a native backend "
        "could",
    )
    export.set_defaults(run=run_export)


def _add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-package",
        action="store_true",
        help="consent to load packages that carry code (custom-op Python, pickles, compiled "
        "libraries); only for packages from a source you trust",
    )


def _add_batch_options(parser: argparse.ArgumentParser, instances: str) -> None:
    parser.add_argument(
        "--max-batch-size",
        type=positive_int,
        default=32,
        help="dynamic batching limit (default 32)",
    )
    parser.add_argument(
        "--max-queue-delay-ms",
        type=positive_float,
        default=2,
        help="longest a request waits for a batch to fill (default 2)",
    )
    parser.add_argument(
        "--instances",
        type=instance_count,
        default=instance_count(instances),
        help="model instances, or auto: measure which instances × threads serve fastest on this "
        f"machine (default {instances})",
    )
    parser.add_argument(
        "--max-queue",
        type=positive_int,
        default=256,
        help="queued requests before 503 (default 256)",
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=30, help="per-request timeout in s (default 30)"
    )
    parser.add_argument(
        "--latency-target-ms",
        type=positive_float,
        help="tune the queue delay so requests finish within this latency",
    )


def _batch_config(args: argparse.Namespace):
    from shipyard.serve import BatchConfig

    return BatchConfig(
        args.max_batch_size,
        args.max_queue_delay_ms,
        args.instances,
        args.max_queue,
        args.timeout,
        args.latency_target_ms,
        args.lone_request_waits,
    )


def run_serve(args: argparse.Namespace) -> int:
    if args.ray and args.workers > 1:
        from shipyard.errors import UsageError

        raise UsageError(
            f"--workers {args.workers} is for shipyard's own server; with --ray, Ray Serve runs "
            f"--replicas {args.workers} instead"
        )
    if args.ray:
        from shipyard.export.ray import RayOptions, serve_with_ray

        serve_with_ray(
            args.packages,
            RayOptions(
                args.replicas,
                args.max_batch_size,
                args.max_queue_delay_ms,
                args.host,
                args.http_port,
                args.threads,
                trust_code=args.trust_package,
            ),
        )
        return 0
    from shipyard.serve import ServeOptions, ServerConfig

    if not args.no_access_log:
        from shipyard.serve.accesslog import print_access_log

        print_access_log()
    options = ServeOptions(
        _batch_config(args),
        int(args.max_request_mb * 1024 * 1024),
        args.threads,
        trust_code=args.trust_package,
        max_connections=args.max_connections,
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        max_inflight_bytes=int(args.max_inflight_mb * 1024 * 1024),
    )
    config = ServerConfig(args.host, args.http_port, None if args.grpc_port < 0 else args.grpc_port)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: binding {args.host}: the server is reachable from other machines, with no "
            f"authentication",
            file=sys.stderr,
        )
    if args.workers > 1:
        _serve_workers(args, config, options)
    else:
        _serve_one(args, config, options)
    print("stopped", flush=True)
    return 0


def _serve_one(args: argparse.Namespace, config, options) -> None:
    from shipyard.serve import Server

    server = Server(args.packages, config, options)
    for model in server.state.repository.all():
        if model.layout is not None:
            print(f"model {model.name}: {model.layout.describe()}", flush=True)

    def ready(server) -> None:
        models = sorted(server.state.repository.models)
        _print_serving(config.host, models, server.http_port, server.grpc_port)

    server.run(on_ready=ready)


def _serve_workers(args: argparse.Namespace, config, options) -> None:
    from shipyard.serve.workers import WorkerPool

    def ready(pool) -> None:
        for name, layout in sorted(pool.layouts.items()):
            print(f"model {name}: {layout} in each of {pool.workers} workers", flush=True)
        print(f"{pool.workers} workers share both ports", flush=True)
        _print_serving(config.host, pool.models, pool.http_port, pool.grpc_port)

    WorkerPool(args.packages, config, options, args.workers, not args.no_access_log).run(ready)


def _print_serving(host: str, models: list[str], http_port: int, grpc_port: int | None) -> None:
    """The line tools wait for: the models and the bound addresses (``--http-port 0`` picks one)."""
    grpc = f" and grpc://{host}:{grpc_port}" if grpc_port is not None else ""
    print(f"serving {', '.join(models)} on http://{host}:{http_port}{grpc}", flush=True)
    _print_tfserving(grpc_port is not None)


def _print_tfserving(grpc_on: bool) -> None:
    from shipyard.serve.tfserving_protos import status

    ok, why = status() if grpc_on else (False, "gRPC is off")
    print(
        "TensorFlow Serving API: REST /v1/models/{m}[:predict]"
        + (
            ", gRPC PredictionService and ModelService"
            if ok
            else f"; its gRPC services are off: {why}"
        ),
        flush=True,
    )


def run_loadtest(args: argparse.Namespace) -> int:
    from shipyard.serve.loadtest import LoadSpec
    from shipyard.serve.loadtest import run_loadtest as drive

    result = drive(
        LoadSpec(
            args.url,
            args.model,
            args.concurrency,
            args.duration,
            args.batch,
            args.max_requests,
            args.warmup,
        )
    )
    print(result.summary())
    return 0 if result.requests else 1


def run_export(args: argparse.Namespace) -> int:
    if args.engine == "triton":
        from shipyard.export.triton import TritonOptions, export_triton, measured_options

        options = TritonOptions(
            args.max_batch_size,
            int(args.max_queue_delay_ms * 1000),
            args.instances,
            python_backend=args.python_backend,
            trust_code=args.trust_package,
        )
        if options.instances is None:
            options, choice = measured_options(args.package, options)
            print(f"instances: {choice.describe()}")
        folder = export_triton(args.package, args.out, options)
        print(f"wrote Triton model {folder} (tritonserver --model-repository {args.out})")
        return 0
    from shipyard.export.ray import RayOptions, export_ray

    app = export_ray(
        args.package,
        args.out,
        RayOptions(
            args.replicas,
            args.max_batch_size,
            args.max_queue_delay_ms,
            trust_code=args.trust_package,
        ),
    )
    print(f"wrote Ray Serve app {app} (serve run {app.stem}:app, from {app.parent})")
    return 0
