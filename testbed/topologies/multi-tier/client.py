"""The lab's client: long-lived connections and a request loop to the VIP, through the
routers. Writes its counters to STATUS (JSON) every 200 ms and one line per failure to
STATUS.events. Arguments: VIP STATUS LONG_CONNS.

A long-lived connection sends "PING" every 200 ms and must get a line back within 2 s;
otherwise it counts as broken (with the backend it was on) and is replaced. A short request
is one HTTP/1.0 GET on a new connection with a 2 s budget.
"""

import json
import os
import socket
import sys
import threading
import time

VIP, STATUS, LONG = sys.argv[1], sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
state = {"long": {}, "long_broken": 0, "broken_by_backend": {}, "short_ok": 0,
         "short_fail": 0, "short_by_backend": {}}
events = open(STATUS + ".events", "a", buffering=1)


def record(kind, **kw):
    kw.update(kind=kind, t=time.monotonic())
    events.write(json.dumps(kw) + "\n")


def long_conn(i):
    while True:
        backend = None
        try:
            s = socket.create_connection((VIP, 80), timeout=2)
            s.settimeout(2)
            f = s.makefile("rb")
            while True:
                s.sendall(b"PING\n")
                line = f.readline()
                if not line:
                    raise OSError("closed by the server")
                backend = line.strip().decode()
                with lock:
                    state["long"][i] = backend
                time.sleep(0.2)
        except OSError as e:
            with lock:
                state["long"].pop(i, None)
                if backend is not None:
                    state["long_broken"] += 1
                    b = state["broken_by_backend"]
                    b[backend] = b.get(backend, 0) + 1
            record("long_broken" if backend else "long_connect_failed", conn=i,
                   backend=backend, error=str(e))
            time.sleep(0.2)


def short_loop():
    while True:
        started = time.monotonic()
        try:
            s = socket.create_connection((VIP, 80), timeout=2)
            s.settimeout(2)
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            s.close()
            if not data.startswith(b"HTTP/1.0 200"):
                raise OSError(f"answer {data[:40]!r}")
            who = data.rsplit(b"\r\n\r\n", 1)[-1].strip().decode()
            with lock:
                state["short_ok"] += 1
                sb = state["short_by_backend"]
                sb[who] = sb.get(who, 0) + 1
        except OSError as e:
            with lock:
                state["short_fail"] += 1
            record("short_fail", error=str(e), started=started)
        time.sleep(0.02)


for i in range(LONG):
    threading.Thread(target=long_conn, args=(i,), daemon=True).start()
    time.sleep(0.01)
threading.Thread(target=short_loop, daemon=True).start()
while True:
    with lock:
        snap = dict(state)
        snap["long"] = dict(state["long"])
        snap["t"] = time.monotonic()
    tmp = STATUS + ".tmp"
    with open(tmp, "w") as f:
        json.dump(snap, f)
    os.replace(tmp, STATUS)
    time.sleep(0.2)
