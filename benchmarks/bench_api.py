"""Benchmark: the HTTP scoring API on a real uvicorn process on 127.0.0.1.

Starts ``termdeposit serve-api`` on a free port (its prediction log in a temporary SQLite
database unless ``--db-url`` is given), waits for ``/health``, then, each phase bounded both in
requests and in seconds:

1. single-record ``POST /predict``, one request at a time: p50 / p95 latency, requests/s,
   errors — with the prediction log (the default) and with ``log=false``;
2. single-record ``POST /predict`` from ``--concurrency`` connections at once: requests/s,
   p50 latency, errors (concurrent requests are scored in shared batches);
3. the batch endpoints: ``POST /predict`` with 1,000 records and ``POST /score`` with a
   20,000-row CSV file: rows/s.

Targets: p50 <= 10 ms and >= 300 requests/s for single records on 2 cores, no errors.
The load generator is a lean asyncio HTTP/1.1 client on keep-alive connections; it shares the
machine's cores with the server.

Run: ``python benchmarks/bench_api.py [--requests N] [--seconds S] [--concurrency C]
[--workers W]`` (needs a production model: ``termdeposit train``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

TARGET_P50_MS = 10.0
TARGET_RPS = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample_records(count: int, seed: int = 0) -> list[dict[str, object]]:
    """Customer records resampled from the reference data (JSON-ready)."""
    from termdeposit.core.schema import INPUT_COLUMNS, NUMERIC_INPUTS
    from termdeposit.data.dataset import load_reference

    reference = load_reference()
    rows = reference.sample(count, replace=True, random_state=seed).loc[:, list(INPUT_COLUMNS)]
    records = []
    for i, row in enumerate(rows.to_dict("records")):
        for column, (_, _, whole) in NUMERIC_INPUTS.items():
            row[column] = int(row[column]) if whole else float(row[column])
        records.append({"customer_id": f"B{seed:03d}-{i:07d}", **row})
    return records


class Connection:
    """One keep-alive HTTP/1.1 connection (just enough of the protocol for this benchmark)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length)
        return int(status_line.split()[1]), payload

    def close(self) -> None:
        self.writer.close()


async def single_records(
    port: int, bodies: list[bytes], concurrency: int, seconds: float, path: str
) -> dict[str, float]:
    """Send the bodies (one record each) over ``concurrency`` connections; time each one."""
    latencies: list[float] = []
    errors = 0
    queue = iter(bodies)
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        connection = await Connection.open(port)
        try:
            for body in queue:
                if time.perf_counter() > deadline:
                    break
                started = time.perf_counter()
                status, _ = await connection.post(path, body, "application/json")
                latencies.append(time.perf_counter() - started)
                errors += status != 200
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
    }


async def batch_rows(port: int, body: bytes, rows: int, repeat: int, seconds: float) -> float:
    """Rows per second of ``POST /predict`` with many records in one request."""
    connection = await Connection.open(port)
    done, started = 0, time.perf_counter()
    try:
        for _ in range(repeat):
            status, payload = await connection.post("/predict", body, "application/json")
            if status != 200:
                raise SystemExit(f"batch predict failed: {status} {payload[:300]!r}")
            done += rows
            if time.perf_counter() - started > seconds:
                break
    finally:
        connection.close()
    return done / (time.perf_counter() - started)


async def score_rows(port: int, csv_bytes: bytes, rows: int) -> float:
    """Rows per second of ``POST /score`` (multipart CSV upload)."""
    boundary = "benchboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="cohort.csv"\r\nContent-Type: text/csv\r\n\r\n'
        ).encode()
        + csv_bytes
        + f"\r\n--{boundary}--\r\n".encode()
    )
    connection = await Connection.open(port)
    try:
        started = time.perf_counter()
        status, payload = await connection.post(
            "/score", body, f"multipart/form-data; boundary={boundary}"
        )
        if status != 200:
            raise SystemExit(f"score failed: {status} {payload[:300]!r}")
        return rows / (time.perf_counter() - started)
    finally:
        connection.close()


def start_server(port: int, workers: int, db_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TERMDEPOSIT_DB_URL": db_url, "TERMDEPOSIT_API_TOKEN": ""}
    command = [
        sys.executable, "-m", "termdeposit.apps.cli", "serve-api", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--log-level", "warning",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the API process stopped while starting")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.3)
    server.terminate()
    raise SystemExit("the API did not become healthy within 90 s")


def line(name: str, figures: dict[str, float]) -> str:
    return (
        f"  {name:<34} p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms  "
        f"{figures['rps']:7.1f} req/s  {figures['requests']:5.0f} requests  "
        f"{figures['errors']:.0f} errors"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per single-record phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="time limit per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--db-url", default=None, help="prediction log (default: temporary)")
    args = parser.parse_args()

    from termdeposit.data.fast_csv import csv_bytes
    from termdeposit.modeling import registry

    version = registry.production_version()
    if version is None:
        sys.exit("No production model: run 'termdeposit train' first.")
    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    db_url = args.db_url or f"sqlite:///{work / 'log.db'}"
    records = sample_records(3 * args.requests + 1000)
    bodies = [json.dumps([r]).encode() for r in records]
    port = free_port()
    server = start_server(port, args.workers, db_url)
    print(
        f"bench_api: model {version}, {args.workers} worker(s), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, log {db_url.split('://')[0]}"
    )
    try:
        n = args.requests
        asyncio.run(single_records(port, bodies[:20], 1, args.seconds, "/predict?log=false"))
        logged = asyncio.run(single_records(port, bodies[:n], 1, args.seconds, "/predict"))
        unlogged = asyncio.run(
            single_records(port, bodies[n : 2 * n], 1, args.seconds, "/predict?log=false")
        )
        concurrent = asyncio.run(
            single_records(port, bodies[2 * n : 3 * n], args.concurrency, args.seconds, "/predict")
        )
        print(line("single record, sequential, logged", logged))
        print(line("single record, sequential, log=false", unlogged))
        print(line(f"single record, {args.concurrency} concurrent, logged", concurrent))
        batch = json.dumps(sample_records(1000, seed=1)).encode()
        rows_per_second = asyncio.run(batch_rows(port, batch, 1000, 10, args.seconds))
        print(f"  batch POST /predict, 1,000 records: {rows_per_second:,.0f} rows/s")
        import pandas as pd

        cohort = pd.DataFrame(sample_records(20_000, seed=2))
        score_rate = asyncio.run(score_rows(port, csv_bytes(cohort), len(cohort)))
        print(f"  POST /score, 20,000-row CSV: {score_rate:,.0f} rows/s")
        best_p50 = min(logged["p50"], unlogged["p50"])
        best_rps = max(logged["rps"], unlogged["rps"], concurrent["rps"])
        errors = logged["errors"] + unlogged["errors"] + concurrent["errors"]
        p50_verdict = "met" if best_p50 <= TARGET_P50_MS else "NOT met"
        rps_verdict = "met" if best_rps >= TARGET_RPS else "NOT met"
        print(
            f"  targets: p50 <= {TARGET_P50_MS:g} ms: {p50_verdict}; "
            f">= {TARGET_RPS:g} req/s: {rps_verdict}; errors: {errors:.0f}"
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
