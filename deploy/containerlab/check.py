"""CI check of the containerlab topology: the YAML parses, every node and link is coherent,
every file it binds exists (except build outputs), every vipd configuration it binds passes
`vipd check-config`, and every FRR configuration passes `vtysh --dryrun` (FRR is installed
by `make deps`). Usage: check.py TOPOLOGY.clab.yml VIPD_BINARY"""

import os
import subprocess
import sys

import yaml

path, vipd = sys.argv[1], sys.argv[2]
base = os.path.dirname(os.path.abspath(path))
with open(path) as f:
    topo = yaml.safe_load(f)
errors = []
nodes = topo["topology"]["nodes"]
for link in topo["topology"].get("links", []):
    for end in link["endpoints"]:
        node = end.split(":")[0]
        if node not in nodes:
            errors.append(f"link endpoint {end}: no node {node}")
configs = set()
frr = set()
for name, node in nodes.items():
    for bind in (node or {}).get("binds", []):
        src = bind.split(":")[0]
        full = os.path.normpath(os.path.join(base, src))
        if "/target/" in full:
            continue  # built by cargo before deploying
        if not os.path.exists(full):
            errors.append(f"{name}: bound file {src} does not exist")
        if full.endswith(".toml"):
            configs.add(full)
        if full.endswith("frr.conf"):
            frr.add(full)
if not configs:
    errors.append("no vipd configuration bound")
for c in sorted(configs):
    r = subprocess.run([vipd, "check-config", c], capture_output=True, text=True)
    if r.returncode != 0:
        errors.append(f"{c}:\n{r.stdout}{r.stderr}")
if not frr:
    errors.append("no FRR configuration bound")
for c in sorted(frr):
    r = subprocess.run(["vtysh", "--dryrun", "-f", c], capture_output=True, text=True)
    if r.returncode != 0:
        errors.append(f"{c}: vtysh --dryrun:\n{r.stdout}{r.stderr}")
for e in errors:
    print("containerlab:", e)
if errors:
    sys.exit(1)
print(f"containerlab: {path}: {len(nodes)} nodes, {len(topo['topology']['links'])} links, "
      f"{len(configs)} vipd configurations and {len(frr)} FRR configurations valid")
