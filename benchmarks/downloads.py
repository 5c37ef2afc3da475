"""Many small books downloaded the way before issue 35 and through one session, side by side.

    python benchmarks/downloads.py      # about 5 minutes, nearly all of it waiting

A server on 127.0.0.1 serves BOOKS small books over HTTP/1.1 and waits LATENCY before each
answer, as a distant server costs a round trip per request. On loopback, opening a connection
costs nothing; on a real network it costs round trips before the first request can go: one for
TCP's handshake, and one more for TLS 1.3's, as for gutenberg.org's https URLs. So the server
also waits `handshake` round trips (0, 1 or 2) more before its first answer on each new
connection. Both ways fetch every book POOL_SIZE at a time, with the project's fetch():
- before: each download with a session of its own, so a connection of its own (fetch() without
  a session, as every download was fetched before issue 35);
- now: fetch_many(), as download-gutenberg runs: one session, its connections reused.
The two ways alternate over ROUNDS rounds; each figure is the median, the ratio is of medians.
Writes "downloads" in metrics/benchmarks.json (--out), every other key kept.
"""

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from lstm_textgen.download import POOL_SIZE, Download, fetch, fetch_many
from lstm_textgen.files import write_json
from run import machine

ROOT = Path(__file__).resolve().parents[1]
BOOKS = 400
BOOK_BYTES = 20_000          # a short book's plain text; transfer time is nothing beside the latency
LATENCY = 0.1                # seconds per round trip (the 100 ms per request)
HANDSHAKES = (0, 1, 2)       # extra round trips before a new connection's first answer: none, TCP, TCP + TLS 1.3
ROUNDS = 3


class LatencyServer:
    """Serves /pg<n>.txt for n in 1..BOOKS, each answer after LATENCY, the first on a new
    connection after `handshake` round trips more; counts the connections it accepts."""

    def __init__(self):
        self.handshake, self.connections, self.body = 0, 0, (b"a plain text line of a short book.\n" * 600)[:BOOK_BYTES]
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # As servers set it on kept-alive connections (nginx's tcp_nodelay): without it, the
                # body, written after the headers, waits for the client's delayed ACK (40 ms here).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.fresh = True
                server.connections += 1

            def do_GET(self):
                time.sleep(LATENCY * (1 + (server.handshake if self.fresh else 0)))
                self.fresh = False
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


class Quiet:
    """A progress counter that shows nothing."""

    def update(self, n):
        pass


def before(downloads: list[Download]) -> None:
    with ThreadPoolExecutor(POOL_SIZE) as pool:
        list(pool.map(lambda d: fetch(d.urls, d.dest, d.what, progress=Quiet()), downloads))


def now(downloads: list[Download]) -> None:
    used, failed = fetch_many(downloads, "books")
    if failed:
        sys.exit(f"downloads failed: {next(iter(failed.values()))}")


def timed(way, server: LatencyServer) -> dict:
    """Seconds to fetch every book `way`, and the connections the server accepted meanwhile."""
    with tempfile.TemporaryDirectory() as folder:
        downloads = [Download(f"book {n}", [f"{server.url}/pg{n}.txt"], Path(folder) / f"pg{n}.txt")
                     for n in range(1, BOOKS + 1)]
        connections, started = server.connections, time.perf_counter()
        way(downloads)
        seconds = time.perf_counter() - started
        assert all(d.dest.stat().st_size == BOOK_BYTES for d in downloads)
        return {"seconds": seconds, "connections": server.connections - connections}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "metrics/benchmarks.json")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    server = LatencyServer()
    results = {}
    for handshake in HANDSHAKES:
        server.handshake = handshake
        runs = {"before": [], "now": []}
        for _ in range(args.rounds):
            for name, way in (("before", before), ("now", now)):
                runs[name].append(timed(way, server))
        seconds = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
        results[str(handshake)] = {
            **{f"{name}_seconds": round(s, 2) for name, s in seconds.items()},
            **{f"{name}_connections": rs[-1]["connections"] for name, rs in runs.items()},
            **{f"{name}_range": [round(min(r["seconds"] for r in rs), 2), round(max(r["seconds"] for r in rs), 2)]
               for name, rs in runs.items()},
            "ratio": round(seconds["before"] / seconds["now"], 2)}
        r = results[str(handshake)]
        print(f"handshake of {handshake} round trip(s): before {r['before_seconds']} s ({r['before_connections']} "
              f"connections), now {r['now_seconds']} s ({r['now_connections']}): {r['ratio']}x", flush=True)
    server.httpd.shutdown()
    out = json.loads(args.out.read_text()) if args.out.exists() else {}
    out["downloads"] = {"machine": machine(), "books": BOOKS, "book_bytes": BOOK_BYTES, "latency_seconds": LATENCY,
                        "parallel": POOL_SIZE, "rounds": args.rounds, "by_handshake_round_trips": results}
    write_json(args.out, out)
    tls = results[str(HANDSHAKES[-1])]["ratio"]
    print(f"target, at least 3x faster with https's round trips (TCP + TLS 1.3): {'met' if tls >= 3 else 'MISSED'} "
          f"({tls}x); with the latency per request alone: {results['0']['ratio']}x")


if __name__ == "__main__":
    main()
