# vipd — build, test and testbed entry points. `make help` lists them.
#
# Everything a fresh Debian 12 machine needs is installed by `make deps` (idempotent:
# only what is missing). The kernel tests run inside Debian's user-mode-linux kernel
# (testbed/uml/), because the host kernel here has no IPVS and no ip tunnels.

SHELL := /bin/bash
CARGO ?= cargo

# Debian packages, in one place. user-mode-linux: the guest kernel with IPVS/ipip;
# kmod: modprobe in the guest; ipvsadm/iproute2: independent witnesses in kernel tests.
# bird2, gobgpd, frr: real BGP peers of the speaker's tests. keepalived: `vipd import` is
# checked against the IPVS table keepalived itself programs.
APT_PACKAGES := user-mode-linux kmod iproute2 ipvsadm procps iputils-ping python3 python3-yaml util-linux coreutils strace bird2 gobgpd frr nftables keepalived chromium fonts-liberation
# Only for `make bench`: the contenders vipd is measured against.
BENCH_APT_PACKAGES := keepalived exabgp haproxy

.PHONY: help deps deny build test test-unit test-kernel test-scenarios demo deb test-deb check-containerlab fmt-check clippy testbed bench check-examples fuzz fuzz-check clean

help:
	@echo "make demo         the seed's topology in UML: traffic through 2 directors, drain one, summary"
	@echo "make deps         install missing Debian packages (root)"
	@echo "make build        build the workspace"
	@echo "make test         deps + fmt check + clippy -D warnings + unit tests + kernel tests in UML"
	@echo "make test-unit    host tests (kernel tests skip here, with a reason)"
	@echo "make test-kernel  kernel tests inside the user-mode-linux guest (VIPD_REQUIRE_KERNEL=1)"
	@echo "make test-scenarios  the events table (connections broken per event) in UML"
	@echo "make deb          build target/debian/vipd_*.deb (cargo-deb; man pages, completions)"
	@echo "make test-deb     install the .deb here, check it, purge it"
	@echo "make testbed      boot the UML guest once and show what its kernel offers"
	@echo "make bench        run the benchmarks under testbed/bench/"
	@echo "make fuzz         fuzz the BGP decoder and FSM, the config loader, the HTTP check parser, agent replies and DNS responses (FUZZ_SECONDS each, default 60)"

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	else echo "deps: all Debian packages present"; fi
	@# Debian starts bird as a service where systemd runs; tests run their own instances.
	@systemctl disable --now bird gobgpd frr keepalived >/dev/null 2>&1 || true
	@$(CARGO) fmt --version >/dev/null && $(CARGO) clippy --version >/dev/null

build:
	$(CARGO) build --workspace

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Real-daemon tests must not skip here: deps installed the daemons.
test-unit:
	VIPD_REQUIRE_DAEMONS=1 $(CARGO) test --workspace

test-kernel: deps
	VIPD_REQUIRE_KERNEL=1 testbed/uml/ktest

check-examples: build
	target/debug/vipd check-config deploy/examples/*.toml

# The containerlab topology parses and every vipd config it binds is valid.
check-containerlab: build
	python3 deploy/containerlab/check.py deploy/containerlab/multi-tier.clab.yml target/debug/vipd

deb: deps
	@command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb --locked
	$(CARGO) build --release -p vipd
	target/release/vipd generate-assets target/assets
	$(CARGO) deb -p vipd --no-build

test-deb: deb
	testbed/deb/test $$(ls -t target/debian/vipd_*.deb | head -1)

# Licenses, duplicate major versions, sources (deny.toml). Advisories are not checked: their
# database is a git repository these machines cannot reach (docs/TESTING.md).
deny:
	@command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked
	$(CARGO) deny check licenses bans sources

# The fuzz targets must keep compiling even when nobody fuzzes.
fuzz-check:
	$(CARGO) check --manifest-path fuzz/Cargo.toml --bins

# cargo-fuzz needs nightly-only flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in bgp_message bgp_fsm bfd_packet config http_response agent_reply dns_response; do \
	    RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; done

# The multi-tier topology: connections broken per event, asserted (0 for planned events);
# then the status page in headless Chromium and the fleet view; then checks through the
# tunnel against data-path faults (direct checks as the control).
test-scenarios: deps
	testbed/topologies/run scenarios
	testbed/topologies/run page
	testbed/topologies/run tunnel

test: deps fmt-check clippy deny test-unit check-examples check-containerlab fuzz-check test-kernel test-scenarios test-deb
	@echo "make test: all passed"

# The main job on a fresh machine: installs, builds, boots the topology, prints a summary.
demo: deps
	testbed/topologies/run demo

testbed: deps
	testbed/uml/run -- testbed/uml/probe

bench: deps
	@$(MAKE) --no-print-directory APT_PACKAGES="$(BENCH_APT_PACKAGES)" deps
	@# Debian starts keepalived as a service on install where systemd runs: the bench runs its own.
	@systemctl disable --now keepalived exabgp haproxy >/dev/null 2>&1 || true
	@for b in testbed/bench/*/run; do echo "== $$b"; $$b || exit 1; done

clean:
	$(CARGO) clean
	rm -rf testbed/out
