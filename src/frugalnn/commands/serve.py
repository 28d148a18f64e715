"""``frugalnn serve --model smollm2|PATH --port N``: an OpenAI-compatible chat-completions server."""

from __future__ import annotations

import argparse
import signal
import socket

from frugalnn.commands._common import non_negative_int, positive_float, positive_int, set_threads
from frugalnn.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a local model over an OpenAI-compatible API (chat completions, completions)",
        description="Serve any model the toolkit loads (the bundled smollm2, an HF folder, a .gguf, a compressed "
        "model saved by frugalnn) at /v1/chat/completions, /v1/completions (streaming included) and /v1/models. "
        "Concurrent requests are batched (--max-batch); greedy unless a request sets a temperature.",
    )
    p.add_argument("--model", default="smollm2", help="smollm2, a Hugging Face folder or a .gguf file")
    p.add_argument("--name", default=None, help="model id clients send (default: the --model value)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=non_negative_int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    p.add_argument("--max-tokens-limit", type=positive_int, default=2048, help="largest max_tokens accepted")
    p.add_argument(
        "--max-connections",
        type=positive_int,
        default=16,
        help="requests served at once; 503 beyond (default 16)",
    )
    p.add_argument(
        "--socket-timeout-s",
        type=positive_float,
        default=30.0,
        help="a connection silent (or not reading) this long is dropped (default 30)",
    )
    p.add_argument(
        "--generation-timeout-s",
        type=positive_float,
        default=300.0,
        help="a generation stops after this long, finish_reason 'length' (default 300)",
    )
    p.add_argument(
        "--default-temperature",
        type=float,
        default=0.0,
        help="temperature of requests that give none (default 0: greedy, reproducible)",
    )
    p.add_argument(
        "--max-batch",
        type=positive_int,
        default=8,
        help="sequences decoded together in one forward pass per step (default 8; 1: one request at a "
        "time behind a lock, with the prompt-prefix KV cache)",
    )
    p.add_argument(
        "--batch-window-ms",
        type=_window_ms,
        default=10.0,
        help="when idle, wait this long for concurrent requests to start together (default 10)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=run)


def _window_ms(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds, got {text!r}") from None
    if not 0.0 <= value <= 10_000.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 10000 ms, got {value}")
    return value


def _check_address(host: str, port: int) -> None:
    """Refuse an unknown host, a port in use or one this user may not bind, in one line."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConfigError(f"--host {host!r} is not a known address; use 127.0.0.1 or 0.0.0.0") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except PermissionError:
            raise ConfigError(
                f"--port {port} needs privileges on this machine; use a port above 1023"
            ) from None
        except OSError as err:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({err.strerror}); choose another --port"
            ) from None


def run(args: argparse.Namespace) -> int:
    from frugalnn.methods.livemind.local import LocalBackend
    from frugalnn.methods.livemind.server import ChatServer

    set_threads(args.threads)
    if args.port > 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    if not 0.0 <= args.default_temperature <= 2.0:
        raise ConfigError(f"--default-temperature must be from 0 to 2, got {args.default_temperature}")
    _check_address(args.host, args.port)  # before the model loads (seconds to minutes)
    name = args.name or str(args.model)
    backend = LocalBackend.load(args.model, name=name)
    if args.max_batch > 1:
        from frugalnn.methods.livemind.batching import BatchedBackend

        backend = BatchedBackend(backend, max_batch=args.max_batch, window_s=args.batch_window_ms / 1000)
    server = ChatServer(
        backend, name, args.host, args.port, args.max_tokens_limit, args.verbose,
        max_connections=args.max_connections, socket_timeout_s=args.socket_timeout_s,
        generation_timeout_s=args.generation_timeout_s, default_temperature=args.default_temperature,
    )  # fmt: skip
    batching = f"batches of up to {args.max_batch}" if args.max_batch > 1 else "one request at a time"
    print(f"serving {name!r} at {server.url}, {batching} (Ctrl-C to stop)", flush=True)

    def stop(signum: int, frame: object) -> None:  # SIGTERM (e.g. from a service manager): stop like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
