#!/usr/bin/env python3
"""Crash test of the api chat channel: kill -9 the daemon under load, restart it, and check that
every message acknowledged with a 2xx is stored exactly once.

64 client threads (keep-alive connections, stdlib only) post messages with unique messageIds
and record the ids answered 200. After LOAD_SECONDS the daemon is killed with SIGKILL while the
clients are still sending; then it is started again on the same state file (so SQLite recovers
its WAL), stopped, and the state file is read: each acknowledged id must be there once. Ids
that were sent but not acknowledged may or may not be stored; both are fine.

Usage: benches/chat_crash.py   (builds nothing: run `cargo build --release` first)
"""

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "switchboard")
CLIENTS = int(os.environ.get("CLIENTS", "64"))
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "5"))
TOKEN = "crash-inbound-token"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(work, port):
    log = open(os.path.join(work, "daemon.log"), "ab")
    daemon = subprocess.Popen(
        [BINARY, "--config", os.path.join(work, "config"), "--state",
         os.path.join(work, "state.db"), "run"],
        stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return daemon
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the daemon did not become ready")


def client(port, n, acked, stop):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    i = 0
    while not stop.is_set():
        i += 1
        mid = f"c{n}-{i}"
        body = json.dumps({"messageId": mid, "from": {"id": f"v{n}", "name": "V"},
                           "text": f"message {i}"})
        try:
            conn.request("POST", "/webhooks/api/web", body,
                         {"Authorization": f"Bearer {TOKEN}",
                          "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                acked.append(mid)
        except (OSError, http.client.HTTPException):
            return  # the daemon died: this client is done


def main():
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"{BINARY} is missing: run `cargo build --release` first")
    work = tempfile.mkdtemp(prefix="switchboard-crash.")
    port = free_port()
    os.makedirs(os.path.join(work, "config"))
    with open(os.path.join(work, "config", "inbound.txt"), "w") as f:
        f.write(TOKEN)
    with open(os.path.join(work, "config", "chat.yaml"), "w") as f:
        f.write(f"""apiVersion: switchboard/v1
kind: Settings
metadata: {{name: default}}
spec: {{siteUrl: 'http://127.0.0.1:{port}', listen: '127.0.0.1:{port}'}}
---
apiVersion: switchboard/v1
kind: User
metadata: {{name: ann}}
spec: {{displayName: Ann, email: ann@example.com}}
---
apiVersion: switchboard/v1
kind: ChatQueue
metadata: {{name: support}}
spec: {{title: Support, routing: leastBusy, operators: [{{user: ann}}]}}
---
apiVersion: switchboard/v1
kind: ChatChannel
metadata: {{name: web}}
spec: {{provider: api, title: Web, queue: support, language: en, inboundToken: {{file: inbound.txt}}}}
""")
    daemon = start(work, port)
    acked, stop = [], threading.Event()
    threads = [threading.Thread(target=client, args=(port, n, acked, stop))
               for n in range(CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(LOAD_SECONDS)
    os.kill(daemon.pid, signal.SIGKILL)  # mid-load: requests are in flight
    daemon.wait()
    stop.set()
    for t in threads:
        t.join()
    acknowledged = list(acked)
    # Restart on the same file (recovery), then stop it cleanly and read the file.
    daemon = start(work, port)
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=15)
    db = sqlite3.connect(f"file:{work}/state.db?mode=ro", uri=True)
    counts = dict(db.execute(
        "SELECT provider_id, count(*) FROM chat_messages WHERE channel = 'web' "
        "GROUP BY provider_id").fetchall())
    missing = [m for m in acknowledged if counts.get(m, 0) == 0]
    doubled = [m for m, n in counts.items() if n > 1]
    print(f"acknowledged {len(acknowledged):,}; stored {sum(counts.values()):,} "
          f"({len(counts) - len(set(acknowledged) & set(counts)):,} stored but never acknowledged); "
          f"acknowledged but missing {len(missing)}; stored twice {len(doubled)}")
    if missing or doubled or not acknowledged:
        sys.exit("FAIL")
    print("PASS: every acknowledged message is stored exactly once")


if __name__ == "__main__":
    main()
