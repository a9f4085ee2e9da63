"""Inside the UML guest (see ./run). Arguments: OUT REPO ROUNDS.

Namespaces on one bridge (10.8.0.0/24):
  dt-rtr  10.8.0.254  BIRD: BGP from vipd and ExaBGP, routes exported to its kernel table
  dt-vipd 10.8.0.1    vipd (IPVS service 198.51.100.1, route 198.51.100.1/32)
  dt-exa  10.8.0.2    ExaBGP + its healthcheck process (route 198.51.100.2/32)
  dt-kad  10.8.0.3    keepalived (IPVS service 198.51.100.3)
  dt-be   10.8.0.10   the backend: python3 -m http.server on :80
Witnesses: `ip monitor route` in dt-rtr (lines timestamped on arrival) for the routes;
`ipvsadm -Ln` polled every ~10 ms in dt-vipd and dt-kad for the weights. One clock
(time.monotonic in this process) for the kill and every observation.
"""

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time

OUT, REPO, ROUNDS = sys.argv[1], sys.argv[2], int(sys.argv[3])
VIPD = f"{REPO}/target/release/vipd"
HOSTS = {"dt-rtr": "10.8.0.254", "dt-vipd": "10.8.0.1", "dt-exa": "10.8.0.2",
         "dt-kad": "10.8.0.3", "dt-be": "10.8.0.10"}
ROUTES = {"vipd": "198.51.100.1", "exabgp": "198.51.100.2"}


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def nsx(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def spawn(ns, args, log, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.Popen(["ip", "netns", "exec", ns, *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=e)


def setup():
    sh("ip", "netns", "add", "dt-lan")
    sh("ip", "-n", "dt-lan", "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", "dt-lan", "link", "set", "br0", "up")
    for i, (ns, addr) in enumerate(HOSTS.items()):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", f"p{i}", "netns", "dt-lan")
        sh("ip", "-n", "dt-lan", "link", "set", f"p{i}", "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")


def write(name, text):
    path = f"{OUT}/{name}"
    with open(path, "w") as f:
        f.write(text)
    return path


def start_bird():
    bird = write("bird.conf", """router id 10.8.0.254;
protocol device {}
protocol kernel { ipv4 { export all; }; }
template bgp t { local 10.8.0.254 as 65010; hold time 9; connect delay time 1;
  error wait time 1, 2; ipv4 { import all; export none; }; }
protocol bgp vipd from t { neighbor 10.8.0.1 as 65001; }
protocol bgp exa from t { neighbor 10.8.0.2 as 65002; }
""")
    spawn("dt-rtr", ["bird", "-f", "-c", bird, "-s", f"{OUT}/bird.ctl"], f"{OUT}/bird.log")


def start_checkers(r):
    """vipd, ExaBGP and keepalived, started anew each round: their check schedules then
    have a new phase relative to each other (a fixed phase would favour one every round)."""
    vipd = write("vipd.toml", f"""[global]
router_id = "10.8.0.1"
state_dir = "{OUT}/state"
drain_file = "{OUT}/disable"
control_socket = "{OUT}/vipd.sock"
[bgp]
local_as = 65001
hold_time = 9
connect_retry = 1
[[bgp.neighbor]]
address = "10.8.0.254"
remote_as = 65010
[[check]]
name = "web"
kind = "http"
port = 80
interval = "1s"
timeout = "500ms"
rise = 1
fall = 2
jitter = "0%"
[[service]]
name = "web"
vip = "198.51.100.1"
port = 80
checks = ["web"]
quorum = 1
[[service.real_server]]
address = "10.8.0.10"
""")
    procs = [spawn("dt-vipd", [VIPD, "run", "--config", vipd], f"{OUT}/vipd-{r}.log")]
    hc = ("/usr/bin/python3 -m exabgp healthcheck --no-syslog --interval 1 --fast-interval 1 "
          "--rise 1 --fall 2 --timeout 1 --cmd 'curl -sf -m 1 http://10.8.0.10/' "
          "--ip 198.51.100.2/32 --next-hop 10.8.0.2 --no-ip-setup --withdraw-on-down")
    exa = write("exabgp.conf", f"""process watch {{
  run {hc};
  encoder text;
}}
neighbor 10.8.0.254 {{
  router-id 10.8.0.2;
  local-address 10.8.0.2;
  local-as 65002;
  peer-as 65010;
  api {{ processes [ watch ]; }}
}}
""")
    procs.append(spawn("dt-exa", ["exabgp", exa], f"{OUT}/exabgp-{r}.log",
                       {"exabgp.daemon.user": "root", "exabgp.log.destination": "stderr"}))
    ka = write("keepalived.conf", """global_defs {
  router_id kad
}
virtual_server 198.51.100.3 80 {
  delay_loop 1
  lvs_sched mh
  lvs_method TUN
  protocol TCP
  real_server 10.8.0.10 80 {
    weight 1
    inhibit_on_failure
    HTTP_GET {
      url {
        path /
        status_code 200
      }
      connect_timeout 1
      retry 1
      delay_before_retry 1
    }
  }
}
""")
    procs.append(spawn("dt-kad", ["keepalived", "--dont-fork", "--log-console", "--check",
                                  "-f", ka, "-p", f"{OUT}/ka.pid", "-c",
                                  f"{OUT}/ka-checkers.pid"], f"{OUT}/keepalived-{r}.log"))
    return procs


def weight(ns, vip):
    out = nsx(ns, "ipvsadm", "-Ln", "-t", f"{vip}:80", check=False)
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "->" and f[1].startswith("10.8.0.10"):
            return int(f[3])
    return None


class Watch:
    """Every observation, stamped with time.monotonic() when seen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.present = {k: False for k in ROUTES}
        self.deleted_at = {}
        self.weights = {"vipd": None, "keepalived": None}
        self.zero_at = {}
        self.armed_at = None
        self.stop = False

    def arm(self, t0):
        with self.lock:
            self.armed_at = t0
            self.deleted_at.clear()
            self.zero_at.clear()

    def routes(self):
        p = subprocess.Popen(["ip", "-n", "dt-rtr", "monitor", "route"],
                             stdout=subprocess.PIPE, text=True, bufsize=1)
        for line in p.stdout:
            now = time.monotonic()
            for who, vip in ROUTES.items():
                if line.startswith(f"{vip} ") or line.startswith(f"{vip}/"):
                    with self.lock:
                        self.present[who] = True
                elif line.startswith(f"Deleted {vip}"):
                    with self.lock:
                        self.present[who] = False
                        if self.armed_at is not None and who not in self.deleted_at:
                            self.deleted_at[who] = now - self.armed_at

    def ipvs(self):
        while not self.stop:
            for who, ns, vip in (("vipd", "dt-vipd", "198.51.100.1"),
                                 ("keepalived", "dt-kad", "198.51.100.3")):
                w = weight(ns, vip)
                now = time.monotonic()
                with self.lock:
                    self.weights[who] = w
                    if w == 0 and self.armed_at is not None and who not in self.zero_at:
                        self.zero_at[who] = now - self.armed_at
            time.sleep(0.005)

    def all_up(self):
        with self.lock:
            return all(self.present.values()) and all(w == 1 for w in self.weights.values())

    def result(self):
        with self.lock:
            if len(self.deleted_at) == len(ROUTES) and len(self.zero_at) == 2:
                return dict(self.zero_at), dict(self.deleted_at)
        return None


def wait(pred, limit, what):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        r = pred()
        if r:
            return r
        time.sleep(0.01)
    raise SystemExit(f"bench: timed out waiting for {what}; logs in {OUT}")


def main():
    setup()
    start_bird()
    w = Watch()
    threading.Thread(target=w.routes, daemon=True).start()
    threading.Thread(target=w.ipvs, daemon=True).start()
    rows = []
    for r in range(ROUNDS):
        be = spawn("dt-be", ["python3", "-m", "http.server", "--bind", "10.8.0.10", "80"],
                   f"{OUT}/backend-{r}.log")
        procs = start_checkers(r)
        wait(w.all_up, 60, "everyone to see the backend up (routes announced, weights 1)")
        time.sleep(1 + random.uniform(0, 1))
        t0 = time.monotonic()
        w.arm(t0)
        be.send_signal(signal.SIGKILL)
        be.wait()
        zero, deleted = wait(w.result, 30, "every detector to react to the kill")
        rows.append((zero["vipd"], zero["keepalived"], deleted["vipd"], deleted["exabgp"]))
        print(f"round {r + 1}: weight 0 vipd {zero['vipd']:.3f} s, keepalived "
              f"{zero['keepalived']:.3f} s; route gone vipd {deleted['vipd']:.3f} s, "
              f"exabgp {deleted['exabgp']:.3f} s", flush=True)
        w.arm(None)
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        wait(lambda: not any(w.present.values()), 30, "the routes to go after the round")
    w.stop = True
    cols = list(zip(*rows))
    med = [statistics.median(c) for c in cols]
    mean = [statistics.mean(c) for c in cols]
    mx = [max(c) for c in cols]
    with open(f"{OUT}/results.txt", "w") as f:
        f.write(f"backend killed -> detected; interval 1 s, fall 2, rise 1; {ROUNDS} rounds, "
                "checkers restarted each round, random phase; seconds (median / mean / max), ratio of medians to vipd;\n"
                "expected from the schedule alone: (fall - 1) x interval + U(0, interval) = 1-2 s\n")
        for i, row in enumerate(rows):
            f.write(f"  round {i + 1}: " + "  ".join(f"{x:.3f}" for x in row) + "\n")
        f.write(f"(a) IPVS weight 0   vipd        {med[0]:.3f} / {mean[0]:.3f} / {mx[0]:.3f}  1.00x\n")
        f.write(f"                    keepalived  {med[1]:.3f} / {mean[1]:.3f} / {mx[1]:.3f}  "
                f"{med[1] / med[0]:.2f}x\n")
        f.write(f"(b) route gone at   vipd        {med[2]:.3f} / {mean[2]:.3f} / {mx[2]:.3f}  1.00x\n")
        f.write(f"    BIRD's kernel   exabgp      {med[3]:.3f} / {mean[3]:.3f} / {mx[3]:.3f}  "
                f"{med[3] / med[2]:.2f}x\n")
        ka = subprocess.run(["keepalived", "--version"], capture_output=True, text=True)
        ka = ka.stdout + ka.stderr
        f.write(f"versions: {sh('exabgp', '--version', check=False).splitlines()[0]}; "
                f"{(ka.splitlines() or [''])[0]}\n")


main()
