"""The floor of a read load: a bare ``grpc.aio`` server (uvloop, one process) answering each
method with a constant reply and doing nothing else.

    python bench/floor_server.py --socket /tmp/floor.sock --replies replies.json

``replies.json`` maps a full method name (``/containerd.services.version.v1.Version/Version``)
to the hex of the reply's bytes; bench/reads.py records containerd's own replies to the
load's requests, so the floor sends the same bytes as a daemon would, with no work behind
them. What a Python process with zero overhead of its own can serve on this machine is the
ceiling of ours (issue 17). Runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

import grpc


class Constant(grpc.GenericRpcHandler):
    def __init__(self, replies: dict[str, bytes]) -> None:
        self.handlers = {method: grpc.unary_unary_rpc_method_handler(self._answer(reply))
                         for method, reply in replies.items()}

    @staticmethod
    def _answer(reply: bytes):
        async def unary(request: bytes, context) -> bytes:
            return reply

        return unary

    def service(self, handler_call_details):
        return self.handlers.get(handler_call_details.method)


async def serve(socket: str, replies: dict[str, bytes]) -> None:
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 256 << 20),
                                      ("grpc.max_receive_message_length", 256 << 20)])
    server.add_generic_rpc_handlers((Constant(replies),))
    server.add_insecure_port(f"unix:{socket}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("serving", flush=True)
    await stop.wait()
    await server.stop(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--replies", required=True)
    args = ap.parse_args()
    with open(args.replies) as f:
        replies = {m: bytes.fromhex(h) for m, h in json.load(f).items()}
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.socket, replies))
    else:
        uvloop.run(serve(args.socket, replies))


if __name__ == "__main__":
    main()
