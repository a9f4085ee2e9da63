"""The multi-tier lab's addresses, and the configuration of each of its daemons."""

VIP = "198.51.100.10"
RUN = "/run/lab"
ROUTERS = {"r1": ("10.7.0.1", "10.8.0.251"), "r2": ("10.7.0.2", "10.8.0.252")}
DIRECTORS = {"d1": "10.8.0.1", "d2": "10.8.0.2", "d3": "10.8.0.3"}
BACKENDS = {"b1": "10.8.0.11", "b2": "10.8.0.12", "b3": "10.8.0.13"}
LONG_CONNS = 48
# d3 runs without BFD: its failure is the negative control of d1's (outage = hold time).
NO_BFD = {"d3"}
FLEET = {"d1": ["d2"], "d2": ["d1"]}


def director_config(name, mode, weights=None, checks=("http", "agent")):
    """`mode`: the lab's; `weights`: backend name -> weight, for the ones that differ from 1;
    `checks`: the service's ("through" is the HTTP check through the tunnel, to the VIP)."""
    ip = DIRECTORS[name]
    weights = weights or {}
    neighbors = "".join(
        f'[[bgp.neighbor]]\naddress = "{core}"\nremote_as = 65100\ndescription = "{r}"\n'
        for r, (_, core) in ROUTERS.items())
    servers = "".join(f'[[service.real_server]]\naddress = "{a}"\nweight = {weights.get(b, 1)}\n'
                      for b, a in BACKENDS.items())
    # d1 and d2 compare their tables on their status pages (d3 comes and goes).
    peers = ", ".join(f'"http://{DIRECTORS[o]}:9180"' for o in FLEET.get(name, []))
    fleet = f'[fleet]\npeers = [{peers}]\ninterval = "1s"\ntimeout = "500ms"\n' if peers else ""
    extra_checks = ""
    if "agent" in checks:
        extra_checks += ('[[check]]\nname = "agent"\nkind = "agent"\nport = 5555\n'
                         'interval = "500ms"\ntimeout = "400ms"\nrise = 1\nfall = 2\n')
    if "through" in checks:
        extra_checks += ('[[check]]\nname = "through"\nkind = "http"\npath = "/health"\n'
                         'port = 80\nvia = "tunnel"\ninterval = "500ms"\ntimeout = "400ms"\n'
                         'rise = 2\nfall = 2\n')
    d = f"{RUN}/{name}"
    return f"""[global]
router_id = "{ip}"
state_dir = "{d}/state"
drain_file = "{d}/disable"
control_socket = "{d}/vipd.sock"
listen = "{ip}:9180"
[global.sysctl]
sloppy_tcp = {0 if mode == "control" else 1}
expire_nodest_conn = 0
expire_quiescent_template = 0
[bgp]
local_as = 65000
hold_time = 9
connect_retry = 1
[bgp.graceful_restart]
enabled = true
restart_time = 60
[bgp.bfd]
enabled = {"false" if name in NO_BFD else "true"}
{neighbors}
[[check]]
name = "http"
kind = "http"
path = "/health"
port = 80
interval = "500ms"
timeout = "400ms"
rise = 2
fall = 2
{extra_checks}[[service]]
name = "web"
vip = "{VIP}"
port = 80
scheduler = "mh"
mh_port = true
forwarding = "tunnel"
checks = [{", ".join(f'"{c}"' for c in checks)}]
quorum = 2
[service.announce]
med = 10
drained_med = 100
drain_delay = "2s"
{servers}{fleet}"""


def backend_config(name, mode):
    d = f"{RUN}/{name}"
    # In `page` mode the backends' status is checked against hand-made damage: no periodic
    # repair may race it (SIGUSR1 repairs when the test says).
    resync = 'resync_interval = "1h"\n' if mode in ("page", "tunnel") else ""
    return f"""[global]
role = "backend"
drain_file = "{d}/disable"
control_socket = "{d}/vipd.sock"
{resync}
[[check]]
name = "local"
kind = "http"
path = "/health"
port = 80
interval = "500ms"
timeout = "400ms"
rise = 1
fall = 2
[[backend.tunnel]]
name = "tunl0"
mode = "ipip"
vips = ["{VIP}"]
[backend.agent]
listen = "0.0.0.0:5555"
state_file = "{d}/agent-check"
checks = ["local"]
"""


def bird_config(r):
    _, core = ROUTERS[r]
    peers = "".join(
        f"protocol bgp {d} from directors {{ neighbor {ip} as 65000; }}\n"
        for d, ip in DIRECTORS.items())
    return f"""router id {core};
protocol device {{}}
protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}
protocol bfd {{
  interface "eth1" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};
}}
template bgp directors {{
  local {core} as 65100;
  hold time 9;
  connect delay time 1;
  error wait time 1, 2;
  graceful restart on;
  bfd on;
  ipv4 {{ import all; export none; }};
}}
{peers}"""
