"""Inside the guest (see run): vipd and HAProxy over the same servers, their pages timed."""

import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

OUT, S, ROUNDS, VIPD = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
SERVERS = ["10.1.0.1", "10.1.0.2", "10.1.0.3"]


def sh(*a):
    subprocess.run(a, check=True)


def listener():
    """Accepts and closes: the TCP checks' target on every server address."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 80))
    s.listen(4096)
    while True:
        c, _ = s.accept()
        c.close()


sh("ip", "link", "set", "lo", "up")
sh("ip", "link", "add", "srv0", "type", "dummy")
sh("ip", "link", "set", "srv0", "up")
for a in SERVERS:
    sh("ip", "addr", "add", f"{a}/32", "dev", "srv0")
threading.Thread(target=listener, daemon=True).start()

with open(f"{OUT}/vipd.toml", "w") as f:
    f.write(f'[global]\nrouter_id = "192.0.2.1"\nstate_dir = "{OUT}/state"\n'
            f'control_socket = "{OUT}/vipd.sock"\nlisten = "127.0.0.1:9180"\n'
            '[[check]]\nname = "tcp"\nkind = "tcp"\nport = 80\ninterval = "10s"\n')
    for i in range(S):
        f.write(f'[[service]]\nname = "s{i}"\nvip = "198.51.100.1"\nport = {1000 + i}\n'
                'checks = ["tcp"]\nquorum = 2\n[service.announce]\nenabled = false\n')
        for a in SERVERS:
            f.write(f'[[service.real_server]]\naddress = "{a}"\n')
with open(f"{OUT}/haproxy.cfg", "w") as f:
    f.write("global\n  maxconn 20000\ndefaults\n  mode tcp\n  timeout connect 5s\n"
            "  timeout client 30s\n  timeout server 30s\n"
            "listen stats\n  mode http\n  bind 127.0.0.1:8404\n  stats enable\n"
            "  stats uri /stats\n")
    for i in range(S):
        f.write(f"backend s{i}\n")
        for j, a in enumerate(SERVERS):
            f.write(f"  server r{j} {a}:80 check inter 10s\n")

vipd = subprocess.Popen([VIPD, "run", "--config", f"{OUT}/vipd.toml"],
                        stdout=open(f"{OUT}/vipd.log", "w"), stderr=subprocess.STDOUT)
hap = subprocess.Popen(["haproxy", "-db", "-f", f"{OUT}/haproxy.cfg"],
                       stdout=open(f"{OUT}/haproxy.log", "w"), stderr=subprocess.STDOUT)


def get(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return time.perf_counter() - t, len(body), body


def ready():
    try:
        _, _, body = get("http://127.0.0.1:9180/status")
        _, _, stats = get("http://127.0.0.1:8404/stats;csv")
    except OSError:
        return False
    # Every service's first health pass (its 3 servers up) and HAProxy's checks.
    up = sum(r["health"] == "up" for s in json.loads(body)["services"]
             for r in s["real_servers"])
    return up == 3 * S and stats.count(b",UP,") >= 3 * S


end = time.monotonic() + 120
while not ready():
    if time.monotonic() > end:
        raise SystemExit(f"bench: not ready after 120 s; logs in {OUT}")
    time.sleep(1)

pages = [("vipd /", "http://127.0.0.1:9180/"),
         ("vipd /status (JSON)", "http://127.0.0.1:9180/status"),
         ("HAProxy /stats (anchor)", "http://127.0.0.1:8404/stats")]
times = {n: [] for n, _ in pages}
sizes = {}
for _ in range(ROUNDS):
    for n, u in pages:
        dt, size, _ = get(u)
        times[n].append(dt * 1000)
        sizes[n] = size
vipd.terminate()
hap.terminate()
vipd.wait()
hap.wait()

anchor = statistics.median(times[pages[2][0]])
lines = [f"Status pages, {S} services x 3 real servers, {ROUNDS} fetches each in turn, "
         "one UML guest (time to the last byte over loopback):", "",
         "| page | median ms | p90 ms | bytes | median vs HAProxy |", "|---|---|---|---|---|"]
for n, _ in pages:
    t = sorted(times[n])
    med = statistics.median(t)
    lines.append(f"| {n} | {med:.1f} | {t[int(len(t) * 0.9) - 1]:.1f} | {sizes[n]:,} | "
                 f"{med / anchor:.2f}x |")
page_med = statistics.median(times["vipd /"])
verdict = "within" if page_med < 100 else "OVER"
lines += ["", f"vipd's page: median {page_med:.1f} ms at {S} services, {verdict} the "
          "100 ms budget."]
text = "\n".join(lines) + "\n"
with open(f"{OUT}/results.md", "w") as f:
    f.write(text)
sys.exit(0 if page_med < 100 else 1)
