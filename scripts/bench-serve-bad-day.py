#!/usr/bin/env python3
"""`estimator serve` on a bad day, on loopback (standard library only):

1. memory: the server's peak RSS above idle while it answers one 16 MiB Iris predict,
   as a multiple of the body;
2. load: while 200 connections hold unfinished request heads and 4 clients post 8 MiB
   predicts back to back, the latency of status requests and of 1-instance Iris
   predicts (p50, p99), each from its own client.

Usage: scripts/bench-serve-bad-day.py [SECONDS]   (default 10)
Builds the release binaries, trains and exports Iris into a temporary folder.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW = {"SepalLength": 5.9, "SepalWidth": 3.0, "PetalLength": 4.2, "PetalWidth": 1.5}


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "estimator-host",
         "-p", "estimator-plugin-iris-custom", "-p", "estimator-plugin-csv",
         "-p", "estimator-plugin-metrics"],
        cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "estimator")


def export_iris(binary, work):
    with open(os.path.join(ROOT, "configs", "iris_custom.yaml")) as f:
        text = f.read()
    text = re.sub(r"model_dir: .*", f"model_dir: {work}/model", text)
    text = text.replace("../data", os.path.join(ROOT, "data"))
    manifest = os.path.join(work, "iris.yaml")
    with open(manifest, "w") as f:
        f.write(text)
    subprocess.run([binary, "train", manifest, "--quiet"], check=True)
    subprocess.run([binary, "export", manifest, "--export-dir", f"{work}/export", "--quiet"],
                   check=True, stdout=subprocess.DEVNULL)
    return f"{work}/export"


def serve(binary, base, *flags):
    proc = subprocess.Popen(
        [binary, "serve", "--model_name", "iris", "--model_base_path", base,
         "--rest_api_port", "0", *flags],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "RUST_LOG": "info"})
    for line in proc.stderr:
        m = re.search(r"Exporting HTTP/REST API at:\S+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit("the server did not start")


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def request(port, method, path, body=b""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def body_of(size):
    one = json.dumps(ROW)
    n = size // (len(one) + 1)
    return ('{"instances": [' + ",".join([one] * n) + "]}").encode()


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def memory(binary, base):
    proc, port = serve(binary, base)
    try:
        request(port, "POST", "/v1/models/iris:predict", json.dumps({"instances": [ROW]}).encode())
        time.sleep(0.5)
        idle = status_kb(proc.pid, "VmRSS") * 1024
        body = body_of(16 << 20)
        code, answer = request(port, "POST", "/v1/models/iris:predict", body)
        peak = status_kb(proc.pid, "VmHWM") * 1024
        print(f"== memory: one {len(body) / 2**20:.1f} MiB predict ({code}, "
              f"{len(answer) / 2**20:.1f} MiB answered)")
        print(f"idle RSS {idle / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB: "
              f"{(peak - idle) / len(body):.2f}x the body above idle")
    finally:
        proc.terminate()
        proc.wait()


def bad_day(binary, base, seconds):
    proc, port = serve(binary, base)
    slow = []
    try:
        for _ in range(200):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nX-Slow: "
                      + b"a" * 16000)
            slow.append(s)
        big = body_of(8 << 20)
        stop = threading.Event()
        heavy_done = [0]

        def heavy():
            while not stop.is_set():
                request(port, "POST", "/v1/models/iris:predict", big)
                heavy_done[0] += 1

        def timed(method, path, body, out):
            while not stop.is_set():
                start = time.perf_counter()
                code, _ = request(port, method, path, body)
                out.append(((time.perf_counter() - start) * 1000, code))
                time.sleep(0.005)

        status, predict = [], []
        threads = [threading.Thread(target=heavy) for _ in range(4)]
        threads.append(threading.Thread(target=timed, args=("GET", "/v1/models/iris", b"", status)))
        one = json.dumps({"instances": [ROW]}).encode()
        threads.append(threading.Thread(
            target=timed, args=("POST", "/v1/models/iris:predict", one, predict)))
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        print(f"== load: 200 slow heads held, 4 clients posting 8 MiB predicts "
              f"({heavy_done[0]} answered in {seconds} s)")
        for name, samples in (("status", status), ("1-instance predict", predict)):
            ms = [m for m, _ in samples]
            failed = sum(1 for _, c in samples if c != 200)
            print(f"{name}: {len(ms)} requests, p50 {percentile(ms, 0.5):.1f} ms, "
                  f"p99 {percentile(ms, 0.99):.1f} ms, non-200 {failed}")
    finally:
        for s in slow:
            s.close()
        proc.terminate()
        proc.wait()


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    binary = build()
    with tempfile.TemporaryDirectory() as work:
        base = export_iris(binary, work)
        memory(binary, base)
        bad_day(binary, base, seconds)


if __name__ == "__main__":
    main()
