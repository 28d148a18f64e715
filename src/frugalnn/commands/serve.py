"""``frugalnn serve --model smollm2|PATH --port N``: an OpenAI-compatible chat-completions server."""

from __future__ import annotations

import argparse
import signal

from frugalnn.commands._common import non_negative_int, positive_int, set_threads


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a local model over an OpenAI-compatible /v1/chat/completions API",
        description="Serve any model the toolkit loads (the bundled smollm2, an HF folder, a .gguf, a compressed "
        "model saved by frugalnn) at /v1/chat/completions (streaming included) and /v1/models. Greedy decoding.",
    )
    p.add_argument("--model", default="smollm2", help="smollm2, a Hugging Face folder or a .gguf file")
    p.add_argument("--name", default=None, help="model id clients send (default: the --model value)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port", type=non_negative_int, default=8000, help="port (default 8000; 0 picks a free one)"
    )
    p.add_argument("--max-tokens-limit", type=positive_int, default=2048, help="largest max_tokens accepted")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from frugalnn.methods.livemind.local import LocalBackend
    from frugalnn.methods.livemind.server import ChatServer

    set_threads(args.threads)
    name = args.name or str(args.model)
    backend = LocalBackend.load(args.model, name=name)
    server = ChatServer(backend, name, args.host, args.port, args.max_tokens_limit, args.verbose)
    print(f"serving {name!r} at {server.url} (Ctrl-C to stop)", flush=True)

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
