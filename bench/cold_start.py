"""Cold start of the app: seconds from `python app.py` to the first `/generate` token and answer.

    python bench/cold_start.py [--runs 1] [--no-preload] [--warm-cache] [--delay 0]

Starts `python app.py` in Space mode (SPACE_ID set) with an empty converted-model cache
(MOODPO_CACHE in a new temporary folder, so the embedded GGUF is de-quantised again), waits for
the server, then (after --delay seconds: a visitor reading the page) streams one `/generate`
through gradio_client on the policy the Steer tab opens on. Prints, per run: when the server
answered, the first token and the finished (scored) answer in seconds after the process started,
and the first token in seconds after the request. The last line is `ratio=<first token / 30 s>`.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
from common import ROOT, machine, median, ratio_line

PROMPT = "How do airplanes stay in the air?"
TARGET_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_run(preload: bool, cache: str, delay: float = 0.0) -> tuple[float, float, float, float]:
    from gradio_client import Client

    from ui.serve import initial_policy

    port = free_port()
    env = {**os.environ, "SPACE_ID": "bench/cold-start", "MOODPO_CACHE": cache, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "app.py", "--port", str(port), "--data", os.path.join(cache, "data")]
    if not preload:
        command.append("--no-preload")
    start = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            try:
                if httpx.get(url + "config", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"app.py exited with code {server.returncode}")
            time.sleep(0.1)
        listening = time.perf_counter() - start
        client = Client(url, verbose=False)
        time.sleep(delay)
        asked, first = time.perf_counter() - start, None
        for state in client.submit(PROMPT, [0.7, 0.3], initial_policy("runs", None), api_name="/generate"):
            if first is None and state["response"]:
                first = time.perf_counter() - start
        return listening, first, time.perf_counter() - start, first - asked
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--no-preload", action="store_true", help="load on the first request, as before Space mode")
    p.add_argument("--warm-cache", action="store_true", help="keep one converted-model cache across runs")
    p.add_argument("--delay", type=float, default=0.0, help="seconds between the server answering and the request")
    args = p.parse_args()
    print(machine())
    rows = []
    with tempfile.TemporaryDirectory(prefix="moodpo-cold-") as shared:
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="moodpo-cold-") as fresh:
                cache = shared if args.warm_cache else fresh
                if args.warm_cache and i == 0:
                    one_run(not args.no_preload, cache)  # fills the cache; not counted
                rows.append(one_run(not args.no_preload, cache, args.delay))
            print(f"run {i + 1}: listening {rows[-1][0]:.1f} s · first token {rows[-1][1]:.1f} s · "
                  f"answer {rows[-1][2]:.1f} s · first token {rows[-1][3]:.1f} s after the request", flush=True)
    first = median([r[1] for r in rows])
    print(f"median first token {first:.1f} s (target {TARGET_SECONDS:.0f} s), "
          f"answer {median([r[2] for r in rows]):.1f} s")
    print(ratio_line(first / TARGET_SECONDS))


if __name__ == "__main__":
    main()
