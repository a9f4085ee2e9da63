#!/bin/bash
# Inside the UML guest (see ./run). Arguments: OUT SERVICES DESTS REPO.
set -u
out=$1; S=$2; D=$3; repo=$4
vipd=$repo/target/release/vipd
apply=$repo/target/release/examples/ipvs_apply
total=$((S * D + S))
res=$out/results.txt
: > "$res"
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# Epoch seconds of the first vipd log line containing $2 (RFC 3339 timestamps, UTC). Only
# ever subtracted from another vipd timestamp: inside UML the shell's clock and vipd's
# were seen to disagree by ~0.7 s.
logtime() { local ts; ts=$(grep -m1 -- "$2" "$1" | cut -d' ' -f1); date -d "$ts" +%s.%N; }
waitlog() { local i=0; until grep -q -- "$2" "$1"; do sleep 0.02; i=$((i + 1)); [ $i -gt 30000 ] && { echo "timeout waiting for $2" >&2; return 1; }; done; }
objects() { ip netns exec "$1" cat /proc/net/ip_vs | awk 'NR > 3 && ($1 == "TCP" || $1 == "->") { n++ } END { print n + 0 }'; }
mkns() {
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip -n "$1" link add rs type dummy && ip -n "$1" link set rs up && ip -n "$1" addr add 10.1.255.254/16 dev rs
}

# 1. ipvsadm -R (anchor)
mkns a; t0=$(now); ip netns exec a ipvsadm -R < "$out/rules.ipvsadm"; t1=$(now)
n=$(objects a); anchor=$(since "$t0" "$t1")
t0=$(now); ip netns exec a ipvsadm -e -t 198.51.100.1:1000 -r 10.1.0.1:1000 -i -w 2; t1=$(now)
ipvsadm_weight=$(since "$t0" "$t1"); ip netns del a
echo "ipvsadm_R $anchor $n" >> "$res"

# 2. vipd's planner + client alone: one ack at a time, 64 in flight, batched (vipd's way)
for m in w1 w64 batch; do
    mkns "m$m"; line=$(ip netns exec "m$m" "$apply" "$S" "$D" "$m"); n=$(objects "m$m"); ip netns del "m$m"
    echo "client_$m $(echo "$line" | sed 's/.*seconds=//') $n" >> "$res"
done

# 3. vipd run
mkns v; cp "$out/vipd.toml" "$out/vipd-run.toml"
echo up > "$out/flag"
t0=$(now)
ip netns exec v "$vipd" run --config "$out/vipd-run.toml" 2> "$out/vipd.log" &
waitlog "$out/vipd.log" 'writes reason="configuration"'; t1=$(now)
n=$(objects v)
echo "vipd_run $(since "$t0" "$t1") $n" >> "$res"
echo "vipd_run_writes $(grep -m1 'writes reason="configuration"' "$out/vipd.log" | sed 's/.*reconcile: \([0-9]*\) writes.*/\1/') 0" >> "$res"
pid=$(pgrep -f "^$vipd run --config $out/vipd-run.toml")
# One weight change: the first real server of the first service, 1 -> 2.
python3 - "$out/vipd-run.toml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace('address = "10.1.0.1"\n', 'address = "10.1.0.1"\nweight = 2\n', 1)
open(p, "w").write(s)
PY
# Lines of the log from line $2 on that contain $3; the first one's time.
logtime_from() { local ts; ts=$(tail -n +"$2" "$1" | grep -m1 -- "$3" | cut -d' ' -f1); date -d "$ts" +%s.%N; }
waitlog_from() { local i=0; until tail -n +"$2" "$1" | grep -q -- "$3"; do sleep 0.02; i=$((i + 1)); [ $i -gt 30000 ] && { echo "timeout waiting for $3" >&2; return 1; }; done; }
from=$(($(wc -l < "$out/vipd.log") + 1))
kill -HUP "$pid"
waitlog_from "$out/vipd.log" "$from" "reconcile: "
t0=$(logtime_from "$out/vipd.log" "$from" "SIGHUP: reloading"); t1=$(logtime_from "$out/vipd.log" "$from" "reconcile: ")
w=$(tail -n +"$from" "$out/vipd.log" | grep -m1 'reconcile: ' | sed 's/.*reconcile: \([0-9]*\) writes.*/\1/')
echo "vipd_weight $(since "$t0" "$t1") $w" >> "$res"
echo "vipd_rss_kb $(awk '/VmHWM/ {print $2}' /proc/$pid/status) 0" >> "$res"
# A health-driven change: the file check of 10.1.0.1 (service s1000) says down.
from=$(($(wc -l < "$out/vipd.log") + 1))
echo down > "$out/flag"
waitlog_from "$out/vipd.log" "$from" "op=ipvsadm -e -t 198.51.100.1:1000 -r 10.1.0.1:1000"
t0=$(logtime_from "$out/vipd.log" "$from" "real server down: s1000/10.1.0.1:1000")
t1=$(logtime_from "$out/vipd.log" "$from" "op=ipvsadm -e -t 198.51.100.1:1000 -r 10.1.0.1:1000")
w=$(tail -n +"$from" "$out/vipd.log" | grep -c 'op=ipvsadm')
echo "vipd_health $(since "$t0" "$t1") $w" >> "$res"
# /metrics at this size: time per scrape, and the IPVS dumps they caused (vipd's counter).
ip netns exec v python3 - "$res" <<'PY'
import sys, time, urllib.request
def scrape():
    t = time.perf_counter()
    body = urllib.request.urlopen("http://127.0.0.1:9180/metrics", timeout=30).read().decode()
    return time.perf_counter() - t, body
def dumps(body):
    return int(float(next(l.split()[-1] for l in body.splitlines() if l.startswith("vipd_ipvs_dumps_total"))))
scrape()
_, first = scrape()
times = []
for _ in range(20):
    t, body = scrape()
    times.append(t)
times.sort()
with open(sys.argv[1], "a") as f:
    f.write(f"vipd_scrape {times[len(times) // 2]:.4f} {dumps(body) - dumps(first)}\n")
PY
kill -USR1 "$pid"
waitlog "$out/vipd.log" 'reconcile: 0 writes'
t0=$(logtime "$out/vipd.log" "SIGUSR1: IPVS resync"); t1=$(logtime "$out/vipd.log" 'reconcile: 0 writes')
echo "vipd_resync $(since "$t0" "$t1") 0" >> "$res"
grep -q 'reason="resync requested"' "$out/vipd.log" || echo "vipd_resync_missing" >> "$res"
echo "vipd_rss_scrape_kb $(awk '/VmHWM/ {print $2}' /proc/$pid/status) 0" >> "$res"
# The size of one /metrics answer at this scale.
echo "vipd_metrics_bytes $(ip netns exec v python3 -c 'import urllib.request; print(len(urllib.request.urlopen("http://127.0.0.1:9180/metrics", timeout=60).read()))') 0" >> "$res"
kill -TERM "$pid"; wait "$pid" 2>/dev/null; ip netns del v

# 4. keepalived
mkns k
t0=$(now)
ip netns exec k keepalived --dont-fork --log-console --check -f "$out/keepalived.conf" \
    -p /run/ka.pid -c /run/ka-checkers.pid > "$out/keepalived.log" 2>&1 &
i=0; until [ "$(objects k)" -ge "$total" ]; do sleep 0.1; i=$((i + 1)); [ $i -gt 9000 ] && break; done
t1=$(now); n=$(objects k)
echo "keepalived $(since "$t0" "$t1") $n" >> "$res"
sed -i '0,/    weight 1/s//    weight 2/' "$out/keepalived.conf"
t0=$(now); kill -HUP "$(cat /run/ka.pid)"
i=0; until ip netns exec k ipvsadm -Ln -t 198.51.100.1:1000 | grep -q '10.1.0.1:1000 .* 2 '; do sleep 0.05; i=$((i + 1)); [ $i -gt 6000 ] && break; done
t1=$(now)
echo "keepalived_weight $(since "$t0" "$t1") 0" >> "$res"
kill -TERM "$(cat /run/ka.pid)"; sleep 1; ip netns del k

awk -v S="$S" -v D="$D" -v total="$total" -v ipvsadm_weight="$ipvsadm_weight" '
{ t[$1] = $2; n[$1] = $3 }
END {
    a = t["ipvsadm_R"]
    printf "IPVS programming: %d services x %d real servers = %d objects, one UML guest run\n", S, D, total
    printf "%-44s %10s %10s %12s\n", "contender", "seconds", "vs -R", "objects"
    split("ipvsadm_R client_w1 client_w64 client_batch vipd_run keepalived", k, " ")
    names["ipvsadm_R"] = "ipvsadm -R < rules (anchor)"
    names["client_w1"] = "vipd client, one ack at a time (window 1)"
    names["client_w64"] = "vipd client, pipelined (window 64)"
    names["client_batch"] = "vipd client, batched (what vipd uses)"
    names["vipd_run"] = "vipd run: start -> programmed"
    names["keepalived"] = "keepalived 2.2.7: start -> all rules present"
    for (i = 1; i <= 6; i++) printf "%-44s %10.3f %9.2fx %12d\n", names[k[i]], t[k[i]], t[k[i]] / a, n[k[i]]
    printf "vipd run wrote %d IPVS objects: each service is created without a scheduler, filled, then switched to mh\n", t["vipd_run_writes"]
    printf "\none weight change: vipd SIGHUP -> done %.3f s with %d IPVS write(s); ipvsadm -e %.3f s; keepalived SIGHUP -> visible %.3f s\n", t["vipd_weight"], n["vipd_weight"], ipvsadm_weight, t["keepalived_weight"]
    printf "no-change resync (dump %d objects + plan): vipd SIGUSR1 -> done %.3f s, 0 IPVS writes\n", total, t["vipd_resync"]
    printf "health-driven weight change: check result -> acknowledged write %.4f s, %d IPVS write(s)\n", t["vipd_health"], n["vipd_health"]
    printf "/metrics scrape at this size: median %.4f s over 20, %d IPVS dumps caused\n", t["vipd_scrape"], n["vipd_scrape"]
    printf "vipd peak RSS: %d KiB after start and one reload; %d KiB at the end, once /metrics was scraped (%d bytes per answer)\n", t["vipd_rss_kb"], t["vipd_rss_scrape_kb"], t["vipd_metrics_bytes"]
}' "$res" > "$res.table"
mv "$res.table" "$res"
