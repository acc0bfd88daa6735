"""The reward-server protocol both ways: RemoteReward against our server (thread and subprocess), against servers
that answer garbage, and our server against requests that are garbage. Everything binds to 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.client
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from trl_htgrpo.rewards import GenEvalReward, RemoteReward, RemoteRewardError, get_reward, register_reward
from trl_htgrpo.rewards import protocol
from trl_htgrpo.rewards.calling import named
from trl_htgrpo.rewards.registry import REWARDS
from trl_htgrpo.rewards.serve import is_loopback, main, make_server
from trl_htgrpo.toy import Scene, SceneObject, decode_codes, render_scene

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _img(*objects):
    return decode_codes(render_scene(Scene([SceneObject(*o) for o in objects])))


SQ = {"class": "square", "count": 1}
# (image, metadata) with partial-credit scores 1, 0 (no square), 0 (found, wrong colour: 1 x 0/1),
# 5/6 (include 2/3 squares, exclude 1), 1 (position)
CASES = [
    (_img(("square", "red", 2, 2)), {"tag": "colors", "include": [{**SQ, "color": "red"}], "prompt": "a red square"}),
    (_img(("circle", "blue", 5, 5)), {"tag": "single_object", "include": [SQ], "prompt": "a square"}),
    (_img(("square", "blue", 1, 1)), {"tag": "colors", "include": [{**SQ, "color": "red"}], "prompt": "a red square"}),
    (_img(("square", "red", 0, 0), ("square", "red", 0, 6)),
     {"tag": "counting", "include": [{"class": "square", "count": 3}], "exclude": [{"class": "square", "count": 4}],
      "prompt": "three squares"}),
    (_img(("circle", "green", 4, 0), ("square", "red", 4, 8)),
     {"tag": "position", "include": [{"class": "square", "count": 1},
                                     {"class": "circle", "count": 1, "position": ["left of", 0]}],
      "prompt": "a circle left of a square"}),
]
IMAGES = [c[0] for c in CASES]
METAS = [c[1] for c in CASES]
PROMPTS = [m["prompt"] for m in METAS]
COLUMNS = {k: [m.get(k) for m in METAS] for k in ("tag", "include", "exclude")}


def jpeg_roundtrip(im):
    return protocol.decode_image(protocol.encode_image(im), 0)


class Serving:
    """A server in a daemon thread on a free 127.0.0.1 port."""

    def __init__(self, server):
        self.server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def geneval_server():
    s = Serving(make_server(GenEvalReward("shapes"), "geneval"))
    yield s
    s.stop()


def _prompt_reward(prompts, completions, **kwargs):
    """Test reward: prompt length + mean red / 255, so prompts, images and their order all matter."""
    return [len(p) + float(np.asarray(im)[..., 0].mean()) / 255 for p, im in zip(prompts, completions)]


@pytest.fixture(scope="module")
def prompt_server():
    s = Serving(make_server(_prompt_reward, "prompt_len"))
    yield s
    s.stop()


def post(url, body: bytes):
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/", body=body)
    resp = conn.getresponse()
    return resp.status, resp.read()


# -- the round trip ------------------------------------------------------------------------------------------------

def test_geneval_server_scores_equal_in_process(geneval_server):
    # JPEG is lossy: the server scores the decoded JPEGs, and so does the in-process reference
    local = GenEvalReward("shapes")
    decoded = [jpeg_roundtrip(im) for im in IMAGES]
    expected = local(PROMPTS, decoded, **COLUMNS)
    assert expected == pytest.approx([1.0, 0.0, 0.0, 5 / 6, 1.0], abs=1e-12)
    assert expected == local(PROMPTS, IMAGES, **COLUMNS)  # JPEG keeps the shapes world's tiles
    remote = RemoteReward.geneval(geneval_server.url, batch_size=2)
    assert remote.score(PROMPTS, IMAGES, **COLUMNS) == expected
    assert asyncio.run(remote(PROMPTS, IMAGES, **COLUMNS)) == expected
    # strict GenEval through the other response key
    strict = RemoteReward.geneval(geneval_server.url, score_key="rewards")
    assert strict.score(PROMPTS, IMAGES, **COLUMNS) == GenEvalReward("shapes", strict=True)(PROMPTS, decoded, **COLUMNS)


def test_geneval_response_has_reward_server_keys(geneval_server):
    body = protocol.dumps({"images": [protocol.encode_image(im) for im in IMAGES], "meta_datas": METAS,
                           "only_strict": True})
    status, raw = post(geneval_server.url, body)
    assert status == 200
    response = pickle.loads(raw)
    assert set(response) == {"scores", "rewards", "strict_rewards", "group_rewards", "group_strict_rewards"}
    assert response["rewards"] == [1.0, 0.0, 0.0, 0.0, 1.0]
    # the per-tag masks: the value where the image has the tag, -10.0 elsewhere, for all six tags
    assert response["group_rewards"]["colors"] == [1.0, -10.0, 0.0, -10.0, -10.0]
    assert response["group_rewards"]["two_object"] == [-10.0] * 5
    assert sorted(response["group_strict_rewards"]) == sorted(protocol.GENEVAL_TAGS)


def test_png_is_lossless_and_prompts_batches_and_scale_travel(prompt_server):
    images = [Image.fromarray(np.full((8, 8, 3), v, dtype=np.uint8)) for v in (0, 51, 102, 153, 204)]
    prompts = ["a", "bb", "ccc", "dddd", "eeeee"]
    expected = _prompt_reward(prompts, images)  # 1 + 0, 2 + 0.2, 3 + 0.4, 4 + 0.6, 5 + 0.8
    assert expected == pytest.approx([1.0, 2.2, 3.4, 4.6, 5.8])
    reward = RemoteReward(prompt_server.url, batch_size=2, image_format="PNG", scale=0.5, max_concurrency=2)
    assert asyncio.run(reward(prompts, images)) == pytest.approx([0.5 * e for e in expected], abs=1e-12)
    # conversational prompts: the last user turn is the caption
    chat = [[{"role": "user", "content": p}] for p in prompts]
    assert reward.score(chat, images) == pytest.approx([0.5 * e for e in expected], abs=1e-12)


def test_maskgrpo_style_numpy_request_is_accepted(prompt_server):
    # MaskGRPO sends np.array_split slices: numpy str arrays for prompts
    prompts = np.array_split(np.array(["a", "bb", "ccc"]), 1)[0]
    body = pickle.dumps({"images": [protocol.encode_image(Image.new("RGB", (4, 4)))] * 3, "prompts": prompts})
    status, raw = post(prompt_server.url, body)
    assert status == 200 and pickle.loads(raw)["scores"] == [1.0, 2.0, 3.0]


def test_async_rewards_overlap_and_stay_awaitable():
    # two slow servers (0.4 s per request) scored together take about one request's time, not two
    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):
            n = len(pickle.loads(self.rfile.read(int(self.headers["Content-Length"])))["images"])
            time.sleep(0.4)
            body = pickle.dumps({"scores": [1.0] * n})
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    servers = [Serving(ThreadingHTTPServer(("127.0.0.1", 0), Slow)) for _ in range(2)]
    try:
        rewards = [named(RemoteReward(s.url), f"slow{i}") for i, s in enumerate(servers)]
        from trl.trainer.utils import is_async_callable

        assert all(is_async_callable(r) for r in rewards)
        images = [Image.new("RGB", (4, 4))] * 3

        async def both():
            return await asyncio.gather(*(r(prompts=["p"] * 3, completions=images) for r in rewards))

        t0 = time.perf_counter()
        out = asyncio.run(both())
        elapsed = time.perf_counter() - t0
        assert out == [[1.0] * 3, [1.0] * 3]
        assert elapsed < 0.75, f"the two servers were called one after the other ({elapsed:.2f} s)"
    finally:
        for s in servers:
            s.stop()


# -- the client against servers that are down or answer garbage -------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{_free_port()}"
    reward = RemoteReward(url, max_retries=1, backoff=0.01, timeout=2)
    with pytest.raises(RemoteRewardError, match=f"reward server {url} failed 2 times.*Connection"):
        reward.score(["p"], [Image.new("RGB", (4, 4))])
    with pytest.raises(RemoteRewardError, match=url):
        asyncio.run(reward(["p"], [Image.new("RGB", (4, 4))]))


class _Garbage(BaseHTTPRequestHandler):
    """Answers what the class attribute ``answer`` says: (status, body); counts requests."""

    answer = (200, b"")
    calls = 0

    def do_POST(self):
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        code, body = self.answer
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _OsSystem:
    def __reduce__(self):
        return (os.getpid, ())


@pytest.mark.parametrize("answer, match", [
    ((200, b"not a pickle"), "not a valid pickle"),
    ((200, pickle.dumps([0.1, 0.2])), "the response is a pickled list"),
    ((200, pickle.dumps({"outputs": [0.1, 0.2]})), r"has no 'scores'; its keys: \['outputs'\]"),
    ((200, pickle.dumps({"scores": [0.1]})), "'scores' has 1 values for 2 images"),
    ((200, pickle.dumps({"scores": [0.1, "high"]})), r"scores\[1\] is str"),
    ((200, pickle.dumps({"scores": [0.1, True]})), r"scores\[1\] is bool"),
    ((200, pickle.dumps({"scores": _OsSystem()})), "refusing to unpickle the global posix.getpid"),
    ((400, b"bad request: nope"), "rejected the request .HTTP 400: bad request: nope"),
    ((500, b"Traceback: CUDA out of memory"), "failed 2 times; last error: HTTP 500: Traceback: CUDA out of memory"),
])
def test_garbage_answers_raise_naming_the_url(answer, match):
    handler = type("H", (_Garbage,), {"answer": answer, "calls": 0})
    s = Serving(ThreadingHTTPServer(("127.0.0.1", 0), handler))
    try:
        reward = RemoteReward(s.url, max_retries=1, backoff=0.01)
        with pytest.raises(RemoteRewardError, match=f"reward server {s.url}.*{match}"):
            reward.score(["p", "q"], [Image.new("RGB", (4, 4))] * 2)
        # 5xx and connection errors are retried, anything else is not
        assert handler.calls == (2 if answer[0] >= 500 else 1)
    finally:
        s.stop()


def test_numpy_scores_and_none_pass():
    handler = type("H", (_Garbage,), {"answer": (200, pickle.dumps({"scores": np.array([0.25, np.nan]),
                                                                    "x": [None, np.float32(2.0)]})), "calls": 0})
    s = Serving(ThreadingHTTPServer(("127.0.0.1", 0), handler))
    try:
        out = RemoteReward(s.url).score(["p", "q"], [Image.new("RGB", (4, 4))] * 2)
        assert out[0] == 0.25 and np.isnan(out[1])
        assert RemoteReward(s.url, score_key="x").score(["p", "q"], [Image.new("RGB", (4, 4))] * 2) == [None, 2.0]
    finally:
        s.stop()


# -- the server against garbage requests --------------------------------------------------------------------------

JPEG = protocol.encode_image(Image.new("RGB", (4, 4)))


@pytest.mark.parametrize("body, match", [
    (b"\x00garbage", "not a pickle of a request dict"),
    (pickle.dumps(["images"]), "the request is a pickled list"),
    (pickle.dumps({"prompts": ["p"]}), "has no 'images'"),
    (pickle.dumps({"images": [JPEG], "queries": ["p"]}), r"unknown request keys \['queries'\]"),
    (pickle.dumps({"images": JPEG}), "'images' is bytes, expected a list"),
    (pickle.dumps({"images": ["x"]}), r"images\[0\] is str, expected bytes"),
    (pickle.dumps({"images": [JPEG, b"GIF89a..."]}), r"images\[1\] is not a JPEG or PNG file"),
    (pickle.dumps({"images": [JPEG], "prompts": ["p", "q"]}), "2 prompts for 1 images"),
    (pickle.dumps({"images": [JPEG], "prompts": [3]}), r"prompts\[0\] is int"),
    (pickle.dumps({"images": [JPEG], "meta_datas": ["tag"]}), r"meta_datas\[0\] is str, expected a dict"),
    (pickle.dumps({"images": [JPEG], "only_strict": "yes"}), "'only_strict' is str, expected bool"),
    (pickle.dumps({"images": [JPEG], "prompts": [_OsSystem()]}), "refusing to unpickle the global posix.getpid"),
])
def test_server_rejects_garbage_with_400(prompt_server, body, match):
    status, raw = post(prompt_server.url, body)
    assert status == 400
    assert match in raw.decode() or __import__("re").search(match, raw.decode()), raw.decode()


def test_reward_errors_are_500_with_the_reason(geneval_server):
    body = protocol.dumps({"images": [JPEG], "meta_datas": [{"tag": "colors", "include": [{"class": "dragon", "count": 1}]}]})
    status, raw = post(geneval_server.url, body)
    assert status == 500 and "include[0].class' is 'dragon'" in raw.decode()
    with pytest.raises(RemoteRewardError, match="HTTP 500: reward 'geneval' failed: ValueError: metadata field 'inc"):
        RemoteReward.geneval(geneval_server.url, max_retries=0).score(
            ["p"], [Image.new("RGB", (4, 4))], tag=["colors"], include=[[{"class": "dragon", "count": 1}]])


def test_loopback_only_unless_allowed():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    with pytest.raises(ValueError, match="refusing to listen on '0.0.0.0'.*allow_remote"):
        make_server(_prompt_reward, "x", host="0.0.0.0")
    with pytest.raises(SystemExit):
        main(["--reward", "geneval", "--option", "detector=shapes", "--host", "0.0.0.0", "--port", "0"])


def test_help_says_it_unpickles(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "UNPICKLES THE REQUESTS" in text and "--allow_remote" in text and "geneval" in text


# -- the registry and the command line -------------------------------------------------------------------------------

def test_registry():
    for name in ("geneval", "geneval_strict", "clipscore", "pickscore", "hpsv2", "imagereward", "aesthetic",
                 "vlm_judge", "remote", "geneval_remote", "hpsv3_remote", "unifiedreward_remote"):
        assert name in REWARDS
    assert get_reward("geneval_strict", detector="shapes").strict and not get_reward("geneval").strict
    assert get_reward("hpsv3_remote").url == "http://127.0.0.1:18087" and get_reward("hpsv3_remote").scale == 0.2
    assert get_reward("remote", url="http://127.0.0.1:1").url == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match=r"unknown reward 'hps'; registered rewards: \['aesthetic', 'clipscore'"):
        get_reward("hps")
    register_reward("test_prompt_len", lambda **o: _prompt_reward)
    try:
        assert get_reward("test_prompt_len") is _prompt_reward
    finally:
        REWARDS.pop("test_prompt_len")


def test_command_line_server_then_killed():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "trl_htgrpo.rewards.serve", "--reward", "geneval", "--option",
                             "detector=shapes", "--import", "trl_htgrpo.toy", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        line = proc.stdout.readline()  # printed once listening
        assert f"serving reward 'geneval' on {url}" in line, line + (proc.stdout.read() if proc.poll() else "")
        reward = RemoteReward.geneval(url, max_retries=1, backoff=0.05, timeout=5)
        assert reward.score(PROMPTS[:2], IMAGES[:2], **{k: v[:2] for k, v in COLUMNS.items()}) == [1.0, 0.0]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    with pytest.raises(RemoteRewardError, match=f"reward server {url} failed 2 times"):
        reward.score(PROMPTS[:1], IMAGES[:1], **{k: v[:1] for k, v in COLUMNS.items()})
