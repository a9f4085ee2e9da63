"""The seed's multi-tier topology inside one UML guest, and what runs on it.

    client 10.7.0.100  (ECMP default route over both routers, L4 hash)
       |  front LAN 10.7.0.0/24
    r1 10.7.0.1 / 10.8.0.251      r2 10.7.0.2 / 10.8.0.252     BIRD 2, eBGP AS 65100,
       |  core LAN 10.8.0.0/24                                  ECMP kernel routes (L4 hash)
    d1 10.8.0.1   d2 10.8.0.2   (d3 10.8.0.3, added by a scenario)   vipd directors, AS 65000
    b1 10.8.0.11  b2 10.8.0.12  b3 10.8.0.13                         vipd backends + HTTP

The VIP 198.51.100.10:80 is an IPVS `mh` (mh-port) service on every director, real servers
in IPIP tunnel mode; the backends hold the VIP on tunl0 and answer the client directly.

Usage (inside the guest, see ../run): lab.py OUT REPO demo|scenarios|control|page|tunnel

`page` checks the status page and the fleet view in a real browser (page.py); `tunnel`
checks through the tunnel against three data-path faults, with direct checks as the control
(tunnel.py).

`control` is the negative control of `scenarios`: the same events with the directors'
`sloppy_tcp = 0`, so a flow that ECMP moves to another director is not picked up there. It
must show broken connections (the table's assertions are not checked in that mode).
"""

import json
import os
import shutil
import subprocess
import sys
import time

OUT, REPO, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
HERE = os.path.dirname(os.path.abspath(__file__))
VIPD = f"{REPO}/target/debug/vipd"
from configs import (  # the addresses and the daemons' configurations
    BACKENDS, DIRECTORS, LONG_CONNS, ROUTERS, RUN, VIP, backend_config,
    bird_config, director_config)
procs = {}


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise SystemExit(f"lab: {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def nsx(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def spawn(name, ns, args):
    log = open(f"{OUT}/{name}.log", "a")
    procs[name] = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=log,
                                   stderr=subprocess.STDOUT)


def stop(name, sig="TERM"):
    p = procs.pop(name, None)
    if p:
        p.send_signal(getattr(__import__("signal"), f"SIG{sig}"))
        p.wait()


def wait(pred, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise SystemExit(f"lab: timed out waiting for {what}; logs in {OUT}")


def lan(name, members):
    sh("ip", "netns", "add", f"lan-{name}")
    sh("ip", "-n", f"lan-{name}", "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", f"lan-{name}", "link", "set", "br0", "up")
    for i, (ns, ifname, addr) in enumerate(members):
        port = f"{name}{i}"
        sh("ip", "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns)
        sh("ip", "link", "set", port, "netns", f"lan-{name}")
        sh("ip", "-n", f"lan-{name}", "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
        sh("ip", "-n", ns, "link", "set", ifname, "up")


def sysctl(ns, name, value):
    nsx(ns, "sysctl", "-qw", f"{name}={value}")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def build():
    shutil.rmtree(RUN, ignore_errors=True)
    names = ["client", *ROUTERS, *DIRECTORS, *BACKENDS]
    for ns in names:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    lan("f", [("client", "eth0", "10.7.0.100")] +
        [(r, "eth0", front) for r, (front, _) in ROUTERS.items()])
    lan("c", [(r, "eth1", core) for r, (_, core) in ROUTERS.items()] +
        [(d, "eth0", ip) for d, ip in DIRECTORS.items()] +
        [(b, "eth0", ip) for b, ip in BACKENDS.items()])
    # The routers share this guest's kernel, hence its flow-hash seed: with the same policy
    # they would send every flow to the same director, and a router failure would move
    # none. r2 hashes on addresses only (policy 0), r1 on the 5-tuple: they disagree, as
    # two different routers do in the seed, so flows change director when r2 fails.
    for ns, policy in (("client", 1), ("r1", 1), ("r2", 0)):
        sysctl(ns, "net.ipv4.fib_multipath_hash_policy", policy)
    sh("ip", "-n", "client", "route", "add", "default",
       *sum((["nexthop", "via", front] for front, _ in ROUTERS.values()), []))
    for r in ROUTERS:
        sysctl(r, "net.ipv4.ip_forward", 1)
        write(f"{RUN}/{r}/bird.conf", bird_config(r))
        spawn(f"bird-{r}", r, ["bird", "-f", "-c", f"{RUN}/{r}/bird.conf",
                               "-s", f"{RUN}/{r}/bird.ctl"])
    for d in DIRECTORS:
        sh("ip", "-n", d, "route", "add", "default", "via", "10.8.0.251")
        write(f"{RUN}/{d}/vipd.toml", director_config(d, MODE))
    for b in BACKENDS:
        sh("ip", "-n", b, "route", "add", "default",
           *sum((["nexthop", "via", core] for _, core in ROUTERS.values()), []))
        write(f"{RUN}/{b}/vipd.toml", backend_config(b, MODE))
        spawn(f"http-{b}", b, ["python3", f"{HERE}/backend_server.py", b])
        spawn(f"vipd-{b}", b, [VIPD, "run", "--config", f"{RUN}/{b}/vipd.toml"])
    for d in ("d1", "d2"):
        start_director(d)


def start_director(d):
    spawn(f"vipd-{d}", d, [VIPD, "run", "--config", f"{RUN}/{d}/vipd.toml"])


def birdc(r, *args):
    return nsx(r, "birdc", "-s", f"{RUN}/{r}/bird.ctl", *args, check=False)


def nexthops(r):
    """The directors the router's kernel sends the VIP to."""
    out = sh("ip", "-n", r, "route", "show", f"{VIP}/32")
    return sorted(ip for d, ip in DIRECTORS.items() if f"via {ip} " in out)


def status(d, *args):
    return sh(VIPD, "status", "--socket", f"{RUN}/{d}/vipd.sock", *args, check=False)


def start_client():
    spawn("client", "client", ["python3", f"{HERE}/client.py", VIP, f"{RUN}/client.json",
                               str(LONG_CONNS)])
    wait(lambda: len(client().get("long", {})) == LONG_CONNS, 30,
         "every long-lived connection to be up")


def client():
    try:
        with open(f"{RUN}/client.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def ipvs_conns(d):
    """Connections IPVS scheduled on this director since its service was created."""
    out = nsx(d, "ipvsadm", "-Ln", "--stats", "-t", f"{VIP}:80", check=False)
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "TCP":
            return int(f[2])
    return 0


def ready(directors=("d1", "d2")):
    want = sorted(DIRECTORS[d] for d in directors)
    return all(nexthops(r) == want for r in ROUTERS)


def banner(text):
    print(f"\n=== {text}", flush=True)


def demo():
    t0 = time.monotonic()
    build()
    wait(ready, 60, "both routers to have an ECMP route over d1 and d2")
    start_client()
    banner(f"topology up in {time.monotonic() - t0:.1f} s: r1 routes {VIP} via "
           + ", ".join(nexthops("r1")))
    print(birdc("r1", "show", "route", "all", f"{VIP}/32"))
    time.sleep(3)
    c = client()
    conns = {d: ipvs_conns(d) for d in ("d1", "d2")}
    banner("requests spread over the backends (short requests by backend), through both "
           "directors (connections IPVS scheduled on each)")
    print(json.dumps(c["short_by_backend"], sort_keys=True), "| directors:", conns)
    banner("vipd status on d1 (serving)")
    print(status("d1"))
    shots = [screenshot("d1", f"{OUT}/d1-page-before-drain.png",
                        "document.querySelector('#services [data-service=web]').dataset.route"
                        " === 'announced'")]
    banner("draining d1: touch /run/lab/d1/disable (the lab's /etc/lb/disable)")
    before = c
    sh(VIPD, "drain", "--file", f"{RUN}/d1/disable")
    wait(lambda: "100" in birdc("r1", "show", "route", "all", f"{VIP}/32")
         and "65535" in birdc("r1", "show", "route", "all", f"{VIP}/32"), 15,
         "the GRACEFUL_SHUTDOWN re-announcement")
    print("r1 during the drain delay (d1's path with community (65535,0) and MED 100):")
    print(birdc("r1", "show", "route", "all", f"{VIP}/32"))
    # The drained MED already moved the routers' best path to d2; the withdrawal follows
    # the drain delay.
    wait(lambda: ready(["d2"]) and "withdrawn" in status("d1"), 20, "d1's withdrawal")
    time.sleep(1)
    after = client()
    banner("after the drain: r1 and r2 route the VIP via d2 only")
    for r in ROUTERS:
        print(r, sh("ip", "-n", r, "route", "show", f"{VIP}/32").strip())
    banner("vipd status on d1 (drained)")
    print(status("d1"))
    shots.append(screenshot("d1", f"{OUT}/d1-page-after-drain.png",
                            "document.querySelector('[data-node]').dataset.node === 'drained'"))
    banner("d1's status page (http://10.8.0.1:9180/), in headless Chromium")
    for p in shots:
        print(f"screenshot: {p}")
    broken = after["long_broken"] - before["long_broken"]
    failed = after["short_fail"] - before["short_fail"]
    summary = (f"SUMMARY: {len(after['short_by_backend'])} backends served "
               f"{after['short_ok']} requests through d1 and d2 "
               f"(IPVS connections d1 {conns['d1']}, d2 {conns['d2']}); "
               f"draining d1 broke {broken} of {LONG_CONNS} long-lived connections and "
               f"failed {failed} requests; {time.monotonic() - t0:.0f} s in all")
    banner(summary)
    write(f"{OUT}/summary.txt", summary + "\n")
    ok = broken == 0 and failed == 0 and len(after["short_by_backend"]) == 3 \
        and conns["d1"] > 0 and conns["d2"] > 0
    return 0 if ok else 1


def screenshot(d, path, ready):
    """A PNG of director d's status page once `ready` (a JS expression) holds."""
    from cdp import Browser
    with Browser(netns=d, width=1280, height=900) as b:
        b.open(f"http://{DIRECTORS[d]}:9180/")
        b.wait_for(ready, 15, f"{d}'s page to be ready")
        b.screenshot(path)
    return path


# Samples of the restart during which d2 was missing from a router's route (must stay empty).
RESTART_WITHDRAWN = []
# The same for the unplanned restart (SIGKILL): must not stay empty.
CRASH_WITHDRAWN = []
# Per event, when it measures one: ms until the routers stopped sending to a dead director.
OUTAGE = {}


class NexthopWatch:
    """Polls both routers' kernel route to the VIP in a thread; remembers every moment a
    director was missing from either."""

    def __init__(self, d):
        import threading
        self.ip, self.missing, self.stop = DIRECTORS[d], 0, False
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop:
            if any(self.ip not in nexthops(r) for r in ROUTERS):
                self.missing += 1
            time.sleep(0.02)

    def end(self):
        self.stop = True
        self.t.join()
        return self.missing


def kill_director(d, limit):
    """d's host dies: vipd SIGKILLed and its link down in the same instant. Returns the ms
    until neither router sends to it any more, or None if they still do after `limit` s."""
    ip = DIRECTORS[d]
    t0 = time.monotonic()
    stop(f"vipd-{d}", "KILL")
    sh("ip", "-n", d, "link", "set", "eth0", "down")
    while any(ip in nexthops(r) for r in ROUTERS):
        if time.monotonic() - t0 > limit:
            return None
        time.sleep(0.005)
    return round((time.monotonic() - t0) * 1000)


def revive_director(d, present):
    sh("ip", "-n", d, "link", "set", "eth0", "up")
    start_director(d)
    wait(lambda: ready(present), 40, f"{d} back in the ECMP routes")


def event(name, do, undo, settle, expected):
    """Runs one event and its reversal under the client's load; one table row."""
    before = client()
    on_backend = {}
    for b in before["long"].values():
        on_backend[b] = on_backend.get(b, 0) + 1
    do()
    time.sleep(settle)
    mid = client()
    undo()
    time.sleep(settle)
    after = client()
    broken = after["long_broken"] - before["long_broken"]
    by = {b: n - before["broken_by_backend"].get(b, 0)
          for b, n in after["broken_by_backend"].items()
          if n - before["broken_by_backend"].get(b, 0) > 0}
    failed = after["short_fail"] - before["short_fail"]
    exp = expected(on_backend)
    row = {"event": name, "long_conns": len(before["long"]), "broken": broken,
           "outage_ms": OUTAGE.pop(name, None),
           "broken_by_backend": by, "expected_max": exp, "short_failed": failed,
           "short_ok": after["short_ok"] - before["short_ok"],
           "broken_during_event": mid["long_broken"] - before["long_broken"]}
    print(json.dumps(row), flush=True)
    return row


def scenarios():
    build()
    wait(ready, 60, "both routers to have an ECMP route over d1 and d2")
    start_client()
    time.sleep(2)
    zero = lambda _: 0  # noqa: E731
    rows = []

    def drain_backend():
        sh(VIPD, "drain", "--file", f"{RUN}/b1/disable")

    def undrain_backend():
        sh(VIPD, "undrain", "--file", f"{RUN}/b1/disable")

    rows.append(event("backend drain (vipd drain on b1)", drain_backend, undrain_backend,
                      4, zero))

    def drain_director():
        sh(VIPD, "drain", "--file", f"{RUN}/d1/disable")
        wait(lambda: ready(["d2"]), 20, "d1's withdrawal")

    def undrain_director():
        sh(VIPD, "undrain", "--file", f"{RUN}/d1/disable")
        wait(ready, 20, "d1 back")

    rows.append(event("director drain (/etc/lb/disable on d1)", drain_director,
                      undrain_director, 2, zero))

    def restart_director():
        w = NexthopWatch("d2")
        stop("vipd-d2")
        time.sleep(1)
        start_director("d2")
        wait(lambda: "Established" in status("d2") and "announced" in status("d2"), 30,
             "d2 back")
        time.sleep(1)
        missing = w.end()
        if missing:
            RESTART_WITHDRAWN.append(missing)

    rows.append(event("director restart with BFD (vipd on d2)", restart_director,
                      lambda: None, 3, zero))

    def add_director():
        start_director("d3")
        wait(lambda: ready(["d1", "d2", "d3"]), 30, "d3 in the ECMP routes")

    rows.append(event("director added (d3)", add_director, lambda: None, 3, zero))

    def crash_restart_director():
        w = NexthopWatch("d2")
        stop("vipd-d2", "KILL")
        time.sleep(1)
        start_director("d2")
        wait(lambda: ready(["d1", "d2", "d3"]), 30, "d2 back in the ECMP routes")
        time.sleep(1)
        CRASH_WITHDRAWN.append(w.end())

    # Negative control of the restart row: the same restart, unplanned (SIGKILL: nothing
    # slowed down, nothing saved). The routers must drop d2 meanwhile.
    rows.append(event("director crash and restart with BFD (d2, negative control)",
                      crash_restart_director, lambda: None, 3, lambda on: LONG_CONNS))

    def fail_d1():
        OUTAGE["director failure (d1 dies: vipd killed, link down; BFD 100 ms x 3)"] = \
            kill_director("d1", 30)

    rows.append(event("director failure (d1 dies: vipd killed, link down; BFD 100 ms x 3)",
                      fail_d1, lambda: revive_director("d1", ["d1", "d2", "d3"]), 3, zero))

    def fail_d3():
        # Past the hold time (9 s) the routers still send to d3: graceful restart keeps
        # its routes as stale for restart_time (60 s). Not waited for.
        OUTAGE["director failure without BFD (d3, negative control)"] = kill_director("d3", 12)

    # Negative control: no bound on broken connections (the outage lasts the hold time).
    rows.append(event("director failure without BFD (d3, negative control)", fail_d3,
                      lambda: revive_director("d3", ["d1", "d2", "d3"]), 3,
                      lambda on: LONG_CONNS))

    def fail_router():
        sh("ip", "-n", "r2", "link", "set", "eth0", "down")
        sh("ip", "-n", "r2", "link", "set", "eth1", "down")
        # The surrounding network converges (BFD/IGP in real life): traffic avoids r2.
        sh("ip", "-n", "client", "route", "replace", "default", "via", "10.7.0.1")
        for b in BACKENDS:
            sh("ip", "-n", b, "route", "replace", "default", "via", "10.8.0.251")

    def repair_router():
        sh("ip", "-n", "r2", "link", "set", "eth0", "up")
        sh("ip", "-n", "r2", "link", "set", "eth1", "up")
        wait(lambda: nexthops("r2") == sorted(DIRECTORS.values()), 30, "r2's routes back")
        sh("ip", "-n", "client", "route", "replace", "default",
           *sum((["nexthop", "via", front] for front, _ in ROUTERS.values()), []))
        for b in BACKENDS:
            sh("ip", "-n", b, "route", "replace", "default",
               *sum((["nexthop", "via", core] for _, core in ROUTERS.values()), []))

    rows.append(event("router failure (r2 down, network reroutes to r1)", fail_router,
                      repair_router, 3, zero))

    def fail_backend():
        sh("ip", "-n", "b3", "link", "set", "eth0", "down")

    def repair_backend():
        sh("ip", "-n", "b3", "link", "set", "eth0", "up")
        time.sleep(3)

    rows.append(event("backend failure (b3 link down)", fail_backend, repair_backend, 4,
                      lambda on: on.get("b3", 0)))
    with open(f"{OUT}/scenarios.json", "w") as f:
        json.dump(rows, f, indent=1)
    table = ["| event | long-lived conns | broken | allowed | broken on | requests ok "
             "| requests failed | outage |", "|---|---|---|---|---|---|---|---|"]
    failures = []
    for r in rows:
        outage = "-"
        if r["outage_ms"] is not None:
            outage = f"{r['outage_ms']} ms"
        elif r["event"].startswith("director failure"):
            outage = "> 12 s (still routed)"
        table.append(f"| {r['event']} | {r['long_conns']} | {r['broken']} | "
                     f"{r['expected_max']} | {r['broken_by_backend'] or '-'} | "
                     f"{r['short_ok']} | {r['short_failed']} | {outage} |")
        if r["broken"] > r["expected_max"]:
            failures.append(f"{r['event']}: {r['broken']} broken, at most "
                            f"{r['expected_max']} allowed")
        if r["expected_max"] == 0 and r["short_failed"] > 0:
            failures.append(f"{r['event']}: {r['short_failed']} requests failed")
        if set(r["broken_by_backend"]) - {"b3"} and r["event"].startswith("backend failure"):
            failures.append(f"{r['event']}: connections broken on other backends")
        if r["event"].startswith("director failure (") and \
                (r["outage_ms"] is None or r["outage_ms"] >= 1000):
            failures.append(f"{r['event']}: outage {r['outage_ms']} ms, not under 1 s")
        if r["event"].startswith("director failure without") and r["outage_ms"] is not None:
            failures.append(f"{r['event']}: outage {r['outage_ms']} ms: the control "
                            "should last past the hold time (9 s)")
    if CRASH_WITHDRAWN and CRASH_WITHDRAWN[0] == 0:
        failures.append("director crash and restart: d2 never left the routers' routes "
                        "(the control shows nothing)")
    if RESTART_WITHDRAWN:
        failures.append(f"director restart: d2 left the routers' routes "
                        f"({RESTART_WITHDRAWN[0]} samples)")
    text = "\n".join(table) + "\n"
    write(f"{OUT}/scenarios.md", text)
    banner("connections broken per event")
    print(text)
    if MODE == "control":
        broken = sum(r["broken"] for r in rows if r["expected_max"] == 0)
        print(f"CONTROL (sloppy_tcp = 0): {broken} connections broken in planned events")
        return 0 if broken > 0 else 1
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


code = 1
try:
    if MODE == "page":
        import page
        code = page.run(sys.modules[__name__])
    elif MODE == "tunnel":
        import tunnel
        code = tunnel.run(sys.modules[__name__])
    else:
        code = demo() if MODE == "demo" else scenarios()  # scenarios or control
finally:
    for name in list(procs):
        stop(name, "KILL" if name.startswith("http") or name == "client" else "TERM")
sys.exit(code)
