"""The federated stream: events of 3 nodes, 500 events/s in total, to one control-room client.

    python benchmarks/bench_federation.py [--nodes 3] [--rate 500] [--seconds 20]
                                          [--loopback] [--strict]

Three real nodes (``jupyter server`` with Hive Lab, each with its own tmux socket and data
dir), each in its own network namespace on its own address (10.77.N.2, veth pairs; the same
harness as tests/test_federation.py), or on 127.0.0.1 with ``--loopback`` / where namespaces
cannot be made. A control room in the root namespace federates them (``c.HiveLab.hosts``).
Two "hooked" sessions per node (Claude Code hooks, the agent is ``cat``) are started through
the control room (``host`` set). One sender process per session posts real hook events
(PostToolUse of a read-only tool, the session's secret, a fresh dedup key each) to its node's
hooks URL on a keep-alive connection, paced to ``rate`` events/s in total; each payload carries
``seq`` and ``t0`` (wall clock at the send).

Measured on the receiving side, at the same time:
  - federated: one client on the control room's ``fleet/stream`` (every host, ``host`` set);
  - baseline: one client per node on that node's own ``events/stream`` (no federation hop).
Latency = receive time - t0 (one machine, one clock). Target: federated p95 < 200 ms, none
lost: every (host, seq) arrives exactly once, and matches what each node stored. Exits 1 on a
lost or doubled event; a missed latency target only with ``--strict``. Cleans up everything.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from websockets.asyncio.client import connect  # noqa: E402

from support.netns import Netns, NetnsNode, free_indexes, unavailable  # noqa: E402
from support.server import HiveServer, wait_for  # noqa: E402


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def send_loop(hooks_url: str, host: str, session: str, secret: str, offset: int, stride: int,
              rate: float, seconds: float, out: Any) -> None:
    """One session's sender, in its own process (so it does not compete with the readers'
    loop): ``rate`` hook events a second on one keep-alive connection, paced; seqs
    ``offset, offset + stride, ...``; puts the seqs sent."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(hooks_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    start = time.perf_counter()
    sent = []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        seq = offset + i * stride
        t0 = time.time()
        body = {"hook_event_name": "PostToolUse", "session_id": f"bench-{session}",
                "tool_name": "Read", "tool_input": {"file_path": "/dev/null"},
                "tool_response": {}, "seq": seq, "t0": t0, "bench_host": host}
        conn.request("POST", url.path, json.dumps(body).encode(), {
            "X-Hive-Session": session, "X-Hive-Secret": secret,
            "X-Hive-Key": secrets.token_hex(16), "X-Hive-Fired": str(t0),
            "X-Hive-Agent": "claude", "Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"{host}: hook POST answered {resp.status}")
        sent.append(seq)
    out.put((host, sent, time.perf_counter() - start))


async def sender(node: HiveServer, host: str, sessions: list[str], rate: float, seconds: float,
                 sent: dict[tuple[str, int], float]) -> float:
    info = json.loads((node.data_dir / "server.json").read_text())
    secrets_of = {s: (node.data_dir / "sessions" / s / "secret").read_text().strip()
                  for s in sessions}
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=send_loop, args=(
        info["hooks_url"], host, name, secrets_of[name], k, len(sessions),
        rate / len(sessions), seconds, out)) for k, name in enumerate(sessions)]
    for proc in procs:
        proc.start()
    took = 0.0
    for _ in procs:
        _, seqs, seconds_taken = await asyncio.to_thread(out.get)
        took = max(took, seconds_taken)
        for seq in seqs:
            sent[(host, seq)] = 0.0
    for proc in procs:
        await asyncio.to_thread(proc.join)
    return took


async def reader(url: str, token: str, got: list[tuple[str, int, float]], stop: asyncio.Event,
                 host: str | None = None) -> None:
    """Collect (host, seq, latency) of every bench event the stream delivers."""
    async with connect(url, additional_headers={"Authorization": f"token {token}"}, proxy=None,
                       max_size=None, ping_interval=None) as ws:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except asyncio.TimeoutError:
                continue
            now = time.time()
            msg = json.loads(raw)
            payload = msg.get("payload") or {}
            if "id" in msg and "seq" in payload and "t0" in payload:
                got.append((msg.get("host") or host or "?", payload["seq"], now - payload["t0"]))


async def measure(room: HiveServer, nodes: dict[str, HiveServer], rate: float,
                  seconds: float) -> dict[str, Any]:
    sessions = {h: [f"{h}-a", f"{h}-b"] for h in nodes}
    for h, names in sessions.items():
        for name in names:
            status, body = room.request("POST", "sessions", {"name": name, "agent": "hooked",
                                                             "host": h})
            assert status == 201, body
    last = {h: max([e["id"] for e in n.client().all_events()] or [0]) for h, n in nodes.items()}
    cursor = ",".join(f"{h}:{i}" for h, i in last.items()) + ",local:999999999"
    fed: list[tuple[str, int, float]] = []
    direct: list[tuple[str, int, float]] = []
    stop = asyncio.Event()
    readers = [asyncio.ensure_future(reader(
        room.url.replace("http", "ws") + f"hive_lab/api/fleet/stream?after={cursor}&heartbeat=1",
        room.token, fed, stop))]
    for h, n in nodes.items():
        readers.append(asyncio.ensure_future(reader(
            n.url.replace("http", "ws") + f"hive_lab/api/events/stream?after={last[h]}",
            n.token, direct, stop, host=h)))
    await asyncio.sleep(1.0)
    sent: dict[tuple[str, int], float] = {}
    load0 = os.getloadavg()[0]
    took = await asyncio.gather(*(sender(n, h, sessions[h], rate / len(nodes), seconds, sent)
                                  for h, n in nodes.items()))
    send_time = max(took)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(fed) < len(sent) or len(direct) < len(sent)):
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # anything doubled would show up now
    stop.set()
    await asyncio.gather(*readers, return_exceptions=True)
    keys = [(h, s) for h, s, _ in fed]
    stored = sum(len([e for e in n.client().all_events(after=last[h])
                      if "seq" in (e.get("payload") or {})]) for h, n in nodes.items())
    return {
        "sent": len(sent), "send_seconds": round(send_time, 2),
        "rate": round(len(sent) / send_time, 1), "stored_on_nodes": stored,
        "federated_received": len(fed), "federated_unique": len(set(keys)),
        "lost": len(set(sent) - set(keys)), "doubled": len(keys) - len(set(keys)),
        "fed_p50_ms": round(1000 * pct([x for *_, x in fed], 50), 1),
        "fed_p95_ms": round(1000 * pct([x for *_, x in fed], 95), 1),
        "fed_max_ms": round(1000 * max([x for *_, x in fed] or [0]), 1),
        "direct_p50_ms": round(1000 * pct([x for *_, x in direct], 50), 1),
        "direct_p95_ms": round(1000 * pct([x for *_, x in direct], 95), 1),
        "direct_lost": len(set(sent) - {(h, s) for h, s, _ in direct}),
        "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--rate", type=float, default=500.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--loopback", action="store_true", help="nodes on 127.0.0.1, no namespaces")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()
    why = None if args.loopback else unavailable()
    use_netns = not args.loopback and why is None
    if not args.loopback and why:
        print(f"network namespaces unavailable ({why}): nodes on 127.0.0.1")
    made: list[Any] = []
    base = Path(tempfile.mkdtemp(prefix="bench-fed-"))
    try:
        nodes: dict[str, HiveServer] = {}
        indexes = free_indexes(args.nodes) if use_netns else []
        for i in range(args.nodes):
            name = f"n{i + 1}"
            if use_netns:
                ns = Netns(indexes[i]).create()
                made.append(ns)
                node: HiveServer = NetnsNode(base / name, netns=ns, poll_interval=1.0,
                                             spool_interval=5.0)
            else:
                node = HiveServer(base / name, poll_interval=1.0, spool_interval=5.0)
            made.append(node)
            node.start()
            nodes[name] = node
        hosts = []
        for name, node in nodes.items():
            tok = base / f"{name}.token"
            tok.write_text(node.token)
            tok.chmod(0o600)
            hosts.append({"name": name, "url": node.url, "token_file": str(tok)})
        room = HiveServer(base / "room", extra_config={"hosts": hosts}, poll_interval=1.0,
                          spool_interval=5.0)
        made.append(room)
        room.start()
        wait_for(lambda: all(h["state"] == "ok" for h in room.get("hosts")["hosts"]),
                 what="nodes ok")
        result = asyncio.run(measure(room, nodes, args.rate, args.seconds))
        result["where"] = "netns" if use_netns else "loopback"
        print(json.dumps(result, indent=2))
        ratio = result["fed_p95_ms"] / max(result["direct_p95_ms"], 0.1)
        print(f"federated p95 {result['fed_p95_ms']} ms vs direct {result['direct_p95_ms']} ms "
              f"(x{ratio:.2f}); p50 {result['fed_p50_ms']} vs {result['direct_p50_ms']} ms")
        ok = result["lost"] == 0 and result["doubled"] == 0 \
            and result["stored_on_nodes"] == result["sent"]
        print("none lost, none twice" if ok else "LOST OR DOUBLED EVENTS")
        met = result["fed_p95_ms"] < 200
        print(f"target p95 < 200 ms: {'met' if met else 'MISSED'}")
        return 0 if ok and (met or not args.strict) else 1
    finally:
        for thing in reversed(made):
            if isinstance(thing, HiveServer):
                thing.stop()
                if thing.port:
                    thing.kill_tmux()
            else:
                thing.destroy()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
