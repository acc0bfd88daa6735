"""Serve a registered reward over HTTP in the wire format of Flow-GRPO's reward servers (:mod:`.protocol`).

    python -m trl_htgrpo.rewards.serve --reward geneval --option detector=shapes --import trl_htgrpo.toy --port 18085
    python -m trl_htgrpo.rewards.serve --reward hpsv2 --port 18087

Clients: :class:`~.remote.RemoteReward` (``get_reward("geneval_remote")``, ``get_reward("remote", url=...)``) and
Flow-GRPO's and MaskGRPO's own clients. The reward's ``__call__`` receives the decoded images, the prompts (the
request's "prompts", else each metadata's "prompt") and, when the request carries "meta_datas", their fields as
dataset columns (``tag=[...], include=[...], ...``), as TRL would pass them. The response holds the reward's
values under "scores"; a GenEval reward also answers reward-server's "rewards" (GenEval's strict correctness),
"strict_rewards" and the per-tag "group_rewards" / "group_strict_rewards".

The server unpickles what clients send. It loads with a restricted unpickler (plain containers and numpy
arrays only), but it is still a service that trusts its clients: it binds to the loopback interface and refuses
any other address unless ``--allow_remote`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import json
import logging
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from trl.trainer.utils import is_async_callable

from . import protocol
from .geneval import GenEvalReward
from .registry import REWARDS, get_reward

logger = logging.getLogger("trl_htgrpo.rewards.serve")


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` resolves to is a loopback address (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


class RewardService:
    """Scores one decoded request with a reward function (one request at a time: models are not thread-safe)."""

    def __init__(self, reward: Callable[..., Any], name: str):
        self.reward, self.name = reward, name
        self._lock = threading.Lock()

    def _call(self, prompts, images, columns) -> list:
        if is_async_callable(self.reward):
            return asyncio.run(self.reward(prompts, images, **columns))
        return self.reward(prompts, images, **columns)

    def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        images, metas = request["images"], request["meta_datas"]
        prompts = request["prompts"]
        if prompts is None:
            prompts = [str(m.get("prompt", "")) for m in metas] if metas is not None else [""] * len(images)
        columns: dict[str, list] = {}
        if metas is not None:
            for key in sorted({k for m in metas for k in m} - {"prompt"}):
                columns[key] = [m.get(key) for m in metas]
        with self._lock:
            if isinstance(self.reward, GenEvalReward) and metas is not None:
                # GenEval: one verdict per image gives the reward and reward-server's extra keys
                rows = [{k: m[k] for k in ("tag", "include", "exclude") if m.get(k) is not None} for m in metas]
                verdicts = self.reward.verdicts(images, rows)
                correct = [1.0 if v.correct else 0.0 for v in verdicts]
                tags = [str(m.get("tag", "")) for m in metas]
                response: dict[str, Any] = {
                    "scores": correct if self.reward.strict else [v.score for v in verdicts],
                    "rewards": correct, "strict_rewards": correct,
                    "group_rewards": protocol.group_by_tag(tags, correct),
                    "group_strict_rewards": protocol.group_by_tag(tags, correct),
                }
            else:
                scores = self._call(prompts, images, columns)
                response = {"scores": protocol.check_scores({"scores": scores}, "scores", len(images))}
        return response


def make_handler(service: RewardService, max_bytes: int):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "trl-htgrpo-reward/1"

        def _send(self, code: int, body: bytes, content_type: str = "application/octet-stream") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code: int, message: str) -> None:
            logger.warning("%s: %d %s", self.client_address[0], code, message.splitlines()[-1][:300])
            self._send(code, message.encode("utf-8"), "text/plain; charset=utf-8")

        def do_GET(self) -> None:  # a health check
            self._send(200, json.dumps({"reward": service.name}).encode(), "application/json")

        def do_POST(self) -> None:
            if self.path not in ("/", ""):
                return self._error(404, f"no route {self.path}; POST to /")
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                return self._error(411, "a Content-Length header is required")
            if int(length) > max_bytes:
                self.close_connection = True
                return self._error(413, f"request of {length} bytes is over the limit of {max_bytes}")
            body = self.rfile.read(int(length))
            try:
                request = protocol.parse_request(protocol.loads(body))
            except protocol.ProtocolError as e:
                return self._error(400, f"bad request: {e}")
            except Exception as e:
                return self._error(400, f"bad request: not a pickle of a request dict ({type(e).__name__}: {e})")
            try:
                response = service.respond(request)
            except Exception as e:  # the reason first (clients show the start), then the traceback
                return self._error(500, f"reward {service.name!r} failed: {type(e).__name__}: {e}\n\n"
                                        f"{traceback.format_exc()}")
            self._send(200, protocol.dumps(response))

        def log_message(self, fmt: str, *args: Any) -> None:
            logger.info("%s %s", self.client_address[0], fmt % args)

    return Handler


def make_server(reward: Callable[..., Any], name: str, host: str = "127.0.0.1", port: int = 0,
                allow_remote: bool = False, max_mb: float = 512.0) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``reward`` (not started: call ``serve_forever()``); ``port=0`` picks a free one
    (``server.server_address[1]``)."""
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"refusing to listen on {host!r}: the server unpickles what clients send, so it listens on "
                         "loopback addresses only; pass allow_remote=True (--allow_remote) on a trusted network")
    server = ThreadingHTTPServer((host, port), make_handler(RewardService(reward, name), int(max_mb * 2**20)))
    server.daemon_threads = True
    return server


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trl_htgrpo.rewards.serve",
        description="Serve a registered reward in the HTTP+pickle format of Flow-GRPO's reward servers "
                    "(yifan123/reward-server): POST / with a pickled dict of JPEG bytes ('images') and 'prompts' "
                    "or GenEval 'meta_datas'; answers a pickled dict with 'scores'.",
        epilog="SECURITY: this server UNPICKLES THE REQUESTS IT RECEIVES. Pickle can run code; the server uses a "
               "restricted unpickler (plain containers and numpy arrays only), but expose it only to clients you "
               "trust. It listens on loopback (127.0.0.1) and refuses any other --host unless --allow_remote is "
               "given. Registered rewards: " + ", ".join(sorted(REWARDS)),
    )
    parser.add_argument("--reward", required=True, help="a registered reward name (see below)")
    parser.add_argument("--option", action="append", type=_option, default=[], metavar="KEY=VALUE",
                        help="an option of the reward, VALUE parsed as JSON when it is JSON (repeatable), "
                             "e.g. --option detector=shapes --option batch_size=32")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=18085, help="port (default: 18085, Flow-GRPO's GenEval port)")
    parser.add_argument("--allow_remote", action="store_true",
                        help="allow a non-loopback --host; anyone who can reach the port can send pickles")
    parser.add_argument("--max_request_mb", type=float, default=512.0, help="largest request accepted (MiB)")
    parser.add_argument("--preload", action="store_true", help="load the reward's weights before listening")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (repeatable): a plug-in that registers rewards or detectors, "
                             "e.g. --import trl_htgrpo.toy for the shapes detector")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for module in args.imports:
        importlib.import_module(module)
    if args.allow_remote and not is_loopback(args.host):
        logger.warning("listening on %s with --allow_remote: any client that reaches this port can send pickles",
                       args.host)
    reward = get_reward(args.reward, **dict(args.option))
    if args.preload and hasattr(reward, "load"):
        reward.load()
    try:
        server = make_server(reward, args.reward, args.host, args.port, args.allow_remote, args.max_request_mb)
    except ValueError as e:
        parser.error(str(e))
    host, port = server.server_address[:2]
    logger.info("serving reward %r on http://%s:%d", args.reward, host, port)
    print(f"serving reward {args.reward!r} on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
