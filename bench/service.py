"""Service networking figures (issue 6), printed, never asserted.

Starts a private `kybern up` (as root with CNI plugins: pods in their own netns,
the nftables proxy; otherwise whatever `auto` picks) in a temp dir, runs the
sample web server (`demo:v1`, Python's ThreadingHTTPServer) and measures:

  1. requests/s direct to one pod's IP, through a Service with that one pod as
     endpoint (ClusterIP, NodePort), and through a Service of 3 replicas —
     side by side, with wrk (Debian's) if installed, else a Python load
     generator (asyncio, keep-alive off as wrk's -H "Connection: close");
  2. how long after a new pod turns Ready (seen on a watch) its address is
     routable through the Service: a request through the ClusterIP reaches it;
  3. how long after a pod turns unready (seen on a watch) it stops receiving
     traffic through the Service: pods of a second Deployment are ready while
     a file `ready` exists (httpGet readiness probe on /ready, period 1 s,
     failureThreshold 1); the bench removes it with `kubectl exec` while
     threads send requests through the ClusterIP, each on a new connection,
     and reports the time from the watch's `Ready=False` to the last response
     from that pod. New connections only: an established connection keeps its
     conntrack entry (DNAT to the old pod) as with kube-proxy — the bench shows
     it with 12 connections opened before the change and used after it.

Run: sudo python bench/service.py [--seconds 5] [--conns 32] [--proxy-mode auto]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import start_cluster, stop_cluster

APP = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: web
        image: demo:v1
        command: ["sh", "-c", "echo $HOSTNAME > index.html; touch ready; exec python3 serve.py"]
        readinessProbe: {{httpGet: {{path: {probe}, port: 80}}, periodSeconds: 1, failureThreshold: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec: {{type: NodePort, selector: {{app: {name}}}, ports: [{{port: 80}}]}}
"""


def wrk(url: str, seconds: int, conns: int) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", url], check=False, capture_output=True,
                         text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


async def pyload(host: str, port: int, seconds: int, conns: int) -> float:
    done = 0
    end = time.monotonic() + seconds

    async def one() -> None:
        nonlocal done
        while time.monotonic() < end:
            try:
                r, w = await asyncio.open_connection(host, port)
                w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                await r.read()
                w.close()
                done += 1
            except OSError:
                await asyncio.sleep(0.01)
    await asyncio.gather(*(one() for _ in range(conns)))
    return done / seconds


def rate(url: str, seconds: int, conns: int) -> float:
    if shutil.which("wrk"):
        return wrk(url, seconds, conns)
    host, port = re.match(r"http://([^:/]+):?(\d*)", url).groups()  # type: ignore[union-attr]
    return asyncio.run(pyload(host, int(port or 80), seconds, conns))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--proxy-mode", default="auto")
    ap.add_argument("--rounds", type=int, default=5, help="new-endpoint and removed-endpoint latency samples")
    a = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kybern-bench-svc-"))
    c = start_cluster(base, "--proxy-mode", a.proxy_mode, "-v")  # -v: the log says which proxy mode
    try:
        print(f"tool: {'wrk' if shutil.which('wrk') else 'python asyncio load generator'}; "
              f"{a.conns} connections, {a.seconds}s each")
        for name, n in (("one", 1), ("three", 3)):
            c.kubectl("apply", "-f", "-", input=APP.format(name=name, replicas=n, probe="/"))
        c.kubectl("apply", "-f", "-", input=APP.format(name="flip", replicas=3, probe="/ready"))
        for name, n in (("one", 1), ("three", 3), ("flip", 3)):
            c.kubectl("rollout", "status", f"deploy/{name}", "--timeout=60s")
        time.sleep(1)
        pod = c.kjson("get", "pods", "-l", "app=one")["items"][0]
        one, three = c.kjson("get", "svc", "one"), c.kjson("get", "svc", "three")
        mode = "cni" if pod["status"]["podIP"] != pod["status"]["hostIP"] else "host"
        log = (base / "kybern.log").read_text()
        pmode = (re.findall(r"service proxy: (\w+) mode", log) or ["?"])[-1]
        print(f"pod network: {mode}; proxy: {pmode}")
        if pmode == "userspace":
            def svc_url(s):  # userspace: 10.X.a.b -> 127.X.a.b
                return f"http://127.{s['spec']['clusterIP'].split('.', 1)[1]}:80/"
        else:
            def svc_url(s):
                return f"http://{s['spec']['clusterIP']}:80/"
        rows = [("direct to the pod IP", f"http://{pod['status']['podIP']}:80/") if mode == "cni" else None,
                ("Service, 1 endpoint (ClusterIP)", svc_url(one)),
                ("Service, 1 endpoint (NodePort 127.0.0.1)", f"http://127.0.0.1:{one['spec']['ports'][0]['nodePort']}/"),
                ("Service, 3 endpoints (ClusterIP)", svc_url(three))]
        print(f"{'target':45} {'req/s':>10}")
        for row in rows:
            if row:
                print(f"{row[0]:45} {rate(row[1], a.seconds, a.conns):10.0f}")
        # new endpoint -> routable
        samples = []
        for i in range(a.rounds):
            c.kubectl("scale", "deploy/one", f"--replicas={2 + i}")
            known = {p["metadata"]["name"] for p in c.kjson("get", "pods", "-l", "app=one")["items"]
                     if any(x["type"] == "Ready" and x["status"] == "True" for x in p["status"].get("conditions", []))}
            t_ready, new = watch_ready(c, known)
            t_route = wait_routable(svc_url(one), new, pmode)
            samples.append(t_route - t_ready)
        samples.sort()
        print(f"new endpoint routable after Ready: median {samples[len(samples) // 2] * 1000:.0f} ms, "
              f"max {samples[-1] * 1000:.0f} ms ({len(samples)} pods; Ready seen on a watch, routable = "
              f"a request through the ClusterIP answered by the new pod)")
        gone = removed_endpoint(c, svc_url(c.kjson("get", "svc", "flip")), a.rounds)
        gone.sort()
        print(f"removed endpoint gets no more traffic after unready: median {gone[len(gone) // 2] * 1000:.0f} ms, "
              f"max {gone[-1] * 1000:.0f} ms ({len(gone)} pods; Ready=False seen on a watch → the last response "
              f"from that pod through the ClusterIP, new connection per request)")
    finally:
        stop_cluster(c)
        shutil.rmtree(base, ignore_errors=True)


def removed_endpoint(c, url: str, rounds: int) -> list[float]:
    """Per round: make one Ready pod of app=flip unready and return the seconds
    from its Ready=False (on a watch) to the last answer it gave through `url`."""
    import threading

    answers: list[tuple[float, str]] = []
    stop = threading.Event()

    def client() -> None:  # one request per connection, so every request is routed afresh
        while not stop.is_set():
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    answers.append((time.monotonic(), r.read().decode().strip()))
            except OSError:
                time.sleep(0.01)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    out = []
    try:
        for i in range(rounds):
            pods = c.kjson("get", "pods", "-l", "app=flip")["items"]
            victim = next(p["metadata"]["name"] for p in pods[i % len(pods):] + pods
                          if any(x["type"] == "Ready" and x["status"] == "True"
                                 for x in p["status"].get("conditions", [])))
            host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()  # type: ignore[union-attr]
            held = [socket.create_connection((host, int(port)), timeout=5) for _ in range(12)]
            seen: list[float] = []
            w = threading.Thread(target=lambda v=victim, s=seen: s.append(watch_condition(c, "app=flip", v, "False")))
            w.start()
            time.sleep(0.5)  # the watch is open before the change
            c.kubectl("exec", victim, "--", "rm", "ready")
            w.join()
            time.sleep(3)  # long enough for any straggler to show up
            last = max((t for t, who in answers if who == victim), default=0.0)
            out.append(last - seen[0])
            stuck = 0  # connections opened before the change, used only now
            for sock in held:
                with sock:
                    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    stuck += sock.makefile("rb").read().rstrip().endswith(victim.encode())
            print(f"  {victim}: connections opened before it turned unready and used 3 s after: "
                  f"{stuck}/{len(held)} still answered by it")
            c.kubectl("exec", victim, "--", "touch", "ready")
            watch_condition(c, "app=flip", victim, "True")
    finally:
        stop.set()
    return out


def watch_condition(c, selector: str, name: str, status: str) -> float:
    """Block until pod `name` has Ready=`status`, seen on a watch (the official client)."""
    from kubernetes import client, watch

    api = client.CoreV1Api(c.api_client())
    for ev in watch.Watch().stream(api.list_namespaced_pod, "default", label_selector=selector, timeout_seconds=60):
        pod = ev["object"]
        if pod.metadata.name == name and any(x.type == "Ready" and x.status == status
                                             for x in pod.status.conditions or []):
            return time.monotonic()
    raise RuntimeError(f"{name} did not turn Ready={status} within 60 s")


def watch_ready(c, known: set[str]) -> tuple[float, str]:
    """Block until a pod of app=one that is not in `known` is Ready, seen on a
    watch (the official client); returns (time, name)."""
    from kubernetes import client, watch

    api = client.CoreV1Api(c.api_client())
    for ev in watch.Watch().stream(api.list_namespaced_pod, "default", label_selector="app=one",
                                   timeout_seconds=60):
        pod = ev["object"]
        if pod.metadata.name not in known and any(x.type == "Ready" and x.status == "True"
                                                  for x in pod.status.conditions or []):
            return time.monotonic(), pod.metadata.name
    raise RuntimeError("no new Ready pod within 60 s")


def wait_routable(url: str, name: str, pmode: str) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.read().decode().strip() == name:
                    return time.monotonic()
        except OSError:
            pass
    raise RuntimeError(f"{name} never answered through {url}")


if __name__ == "__main__":
    main()
