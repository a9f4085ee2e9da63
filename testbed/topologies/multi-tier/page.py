"""The status page and the fleet view, checked in a real browser on the multi-tier lab.

Run by lab.py (mode `page`), with the lab module as `lab`:
  1. d1's page in headless Chromium (inside d1's namespace): the service, its three real
     servers up, both BGP sessions Established, the fleet view agreeing with d2; a
     screenshot; the page weight under its budget.
  2. b2's HTTP server is stopped: the page, never reloaded, shows b2 down (a marker set in
     the page's window survives, so the change came from the live refresh); a screenshot.
  3. `vipd fleet` over d1 and d2 agrees (exit 0); d2 alone is reloaded with another weight
     for b3: `vipd fleet` exits 1 naming the service and both directors, and d1's page shows
     the disagreement; a screenshot.
  4. The backends report their own state: b1 drained -> /healthcheck 503 and the agent's
     answer `drain`; b2's VIP deleted by hand -> its status names the missing VIP,
     /healthcheck 503, /metrics vipd_backend_vip_present 0, its page shows it (a
     screenshot), its agent answers `down #VIP ... missing` and d1 takes b2 out; SIGUSR1
     (resync) puts it back -> 200, and d1 has b2 up again.
Results go to OUT/page.md; screenshots to OUT/*.png.
"""

import json
import subprocess
import time

from cdp import Browser

BUDGET = 50 * 1024


def run(lab):
    out = lab.OUT
    notes = []
    lab.build()
    lab.wait(lab.ready, 60, "both routers to have an ECMP route over d1 and d2")
    d1 = f"http://{lab.DIRECTORS['d1']}:9180/"
    with Browser(netns="d1", width=1280, height=1000) as b:
        b.open(d1)
        b.wait_for("document.querySelectorAll('#services [data-server][data-health=up]')"
                   ".length === 3", 30, "three real servers up on the page")
        b.wait_for("document.querySelectorAll('#neighbors [data-state=Established]')"
                   ".length === 2", 30, "both BGP sessions Established on the page")
        b.wait_for("document.querySelector('#fleet[data-verdict=agree]') !== null", 30,
                   "the fleet view to agree")
        route = b.eval("document.querySelector('#services [data-service=web]').dataset.route")
        assert route == "announced", route
        digest = b.eval("document.querySelector('#services .digest').textContent")
        assert len(digest) == 16, digest
        size = b.eval("fetch('/').then(r => r.text()).then(t => new Blob([t]).size)")
        assert size < BUDGET, f"page weight {size} bytes, budget {BUDGET}"
        notes.append(f"page weight: {size} bytes (HTML + CSS + JS; budget {BUDGET})")
        b.screenshot(f"{out}/page-1-serving.png")

        # A backend goes down: the page must show it without being reloaded.
        b.eval("window.__notReloaded = true")
        lab.stop("http-b2", "KILL")
        t0 = time.monotonic()
        b.wait_for("document.querySelector('[data-server=\"10.8.0.12:80\"]')"
                   ".dataset.health === 'down'", 20, "b2 down on the page")
        shown = time.monotonic() - t0
        assert b.eval("window.__notReloaded === true"), "the page was reloaded"
        b.wait_for("[...document.querySelectorAll('#events td')].some("
                   "td => td.textContent.includes('10.8.0.12') && "
                   "td.textContent.includes('down'))", 10, "b2's down event on the page")
        notes.append(f"b2 down shown {shown:.1f} s after its HTTP server was killed, "
                     "without a reload")
        b.screenshot(f"{out}/page-2-backend-down.png")
        lab.spawn("http-b2", "b2", ["python3", f"{lab.HERE}/backend_server.py", "b2"])
        b.wait_for("document.querySelector('[data-server=\"10.8.0.12:80\"]')"
                   ".dataset.health === 'up'", 20, "b2 up again on the page")

        # The fleet: d1 and d2 agree, then d2 gets another weight for b3 behind d1's back.
        peers = ["--peer", f"http://{lab.DIRECTORS['d1']}:9180",
                 "--peer", f"http://{lab.DIRECTORS['d2']}:9180"]
        ok = fleet(lab, peers)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "2 directors agree on every service" in ok.stdout, ok.stdout
        notes.append("vipd fleet, same configuration (exit 0):\n\n```\n"
                     + ok.stdout.strip() + "\n```")
        lab.write(f"{lab.RUN}/d2/vipd.toml", lab.director_config("d2", lab.MODE, {"b3": 2}))
        r = lab.sh(lab.VIPD, "reload", "--socket", f"{lab.RUN}/d2/vipd.sock", check=False)
        assert "applied" in r, r
        lab.wait(lambda: fleet(lab, peers).returncode == 1, 15, "vipd fleet to disagree")
        bad = fleet(lab, peers)
        for needle in ["DISAGREE web: forwarding tables differ", "10.8.0.1", "10.8.0.2"]:
            assert needle in bad.stdout, bad.stdout
        notes.append("vipd fleet after d2 alone was reloaded with weight 2 for b3 (exit 1):"
                     "\n\n```\n" + bad.stdout.strip() + "\n```")
        b.wait_for("document.querySelector('#fleet[data-verdict=disagree]') !== null", 15,
                   "d1's page to show the disagreement")
        problem = b.eval("document.querySelector('#fleet .problems').textContent")
        assert "web: forwarding tables differ" in problem, problem
        b.screenshot(f"{out}/page-3-fleet-disagrees.png")
        js = json.loads(fleet(lab, peers + ["--json"]).stdout)
        assert js["problems"][0]["kind"] == "tables_differ", js
    backends(lab, notes)
    text = "\n\n".join(notes) + "\n"
    lab.write(f"{out}/page.md", text)
    lab.banner("status page and fleet view")
    print(text)
    for p in ("page-1-serving", "page-2-backend-down", "page-3-fleet-disagrees",
              "page-4-backend-vip-missing"):
        print(f"screenshot: {out}/{p}.png")
    return 0


def fleet(lab, args):
    return subprocess.run(["ip", "netns", "exec", "d1", lab.VIPD, "fleet", *args],
                          capture_output=True, text=True)


def get(lab, ns, url):
    """(status, body) of GET url from inside namespace ns."""
    code = ("import sys, urllib.request, urllib.error\n"
            "try:\n r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status)\n"
            " print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n print(e.code); print(e.read().decode())\n")
    out = lab.sh("ip", "netns", "exec", ns, "python3", "-c", code, url)
    status, _, body = out.partition("\n")
    return int(status), body


def backend_status(lab, b):
    return json.loads(lab.sh(lab.VIPD, "status", "--json", "--socket",
                             f"{lab.RUN}/{b}/vipd.sock"))


def backends(lab, notes):
    hc = "http://127.0.0.1:9180/healthcheck"
    lab.wait(lambda: get(lab, "b1", hc)[0] == 200, 10, "b1's /healthcheck to answer 200")
    lab.sh(lab.VIPD, "drain", "--file", f"{lab.RUN}/b1/disable")
    lab.wait(lambda: get(lab, "b1", hc)[0] == 503, 10, "b1's /healthcheck to answer 503 (drained)")
    code, body = get(lab, "b1", hc)
    assert "drained" in body, body
    st = backend_status(lab, "b1")
    assert st["role"] == "backend" and st["drained"], st
    assert st["backend"]["agent"]["answer"].startswith("drain"), st
    notes.append(f"b1 drained: /healthcheck {code} {body.strip()}; agent answers "
                 f"{st['backend']['agent']['answer']!r}")
    lab.sh(lab.VIPD, "undrain", "--file", f"{lab.RUN}/b1/disable")
    lab.wait(lambda: get(lab, "b1", hc)[0] == 200, 10, "b1's /healthcheck back to 200")

    lab.sh("ip", "-n", "b2", "addr", "del", f"{lab.VIP}/32", "dev", "tunl0")
    missing = f"VIP {lab.VIP} is missing on tunl0"
    lab.wait(lambda: missing in backend_status(lab, "b2")["backend"]["problems"], 10,
             "b2's status to name the missing VIP")
    st = backend_status(lab, "b2")
    assert st["backend"]["tunnels"][0]["vips"][0]["present"] is False, st
    code, body = get(lab, "b2", hc)
    assert code == 503 and missing in body, (code, body)
    _, metrics = get(lab, "b2", "http://127.0.0.1:9180/metrics")
    want = f'vipd_backend_vip_present{{device="tunl0",vip="{lab.VIP}"}} 0'
    assert want in metrics, metrics
    human = lab.sh(lab.VIPD, "status", "--socket", f"{lab.RUN}/b2/vipd.sock")
    assert f"PROBLEM {missing}" in human, human
    with Browser(netns="b2", width=1000, height=700) as b:
        b.open("http://127.0.0.1:9180/")
        b.wait_for("document.querySelector('#backend .problems').textContent"
                   f".includes('{missing}')", 10, "b2's page to name the missing VIP")
        b.screenshot(f"{lab.OUT}/page-4-backend-vip-missing.png")
    notes.append(f"b2's VIP deleted by hand: /healthcheck {code} {body.strip()}; "
                 f"metrics `{want}`; vipd status:\n\n```\n{human.strip()}\n```")
    # A backend that cannot receive tunnelled traffic must not tell the directors it is up.
    answer = st["backend"]["agent"]["answer"]
    assert answer.startswith(f"down #{missing}"), answer
    lab.wait(lambda: server_health(lab, "d1", "10.8.0.12:80") == "down", 10,
             "d1 to take b2 out on its agent's answer")
    notes.append(f"b2's agent answers {answer!r}: d1 takes b2 out (health down)")
    lab.procs["vipd-b2"].send_signal(__import__("signal").SIGUSR1)
    lab.wait(lambda: get(lab, "b2", hc)[0] == 200, 10, "b2 repaired by its resync (SIGUSR1)")
    lab.wait(lambda: server_health(lab, "d1", "10.8.0.12:80") == "up", 10,
             "d1 to put b2 back")
    notes.append("SIGUSR1 on b2 (resync): the VIP is back, /healthcheck 200, d1 has b2 up")


def server_health(lab, d, server):
    st = json.loads(lab.sh(lab.VIPD, "status", "--json", "--socket", f"{lab.RUN}/{d}/vipd.sock"))
    return next(r["health"] for s in st["services"] for r in s["real_servers"]
                if r["address"] == server)

