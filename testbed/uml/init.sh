#!/bin/sh
# PID 1 of the vipd user-mode-linux guest (started by testbed/uml/run).
#
# The guest's root is the host filesystem (hostfs), read-write: binaries built on the host
# are at the same paths. This init gives the guest private /run and /dev/shm and a private
# TMPDIR (/run/tmp), so `ip netns` state and scratch files never land on the host; /tmp
# itself stays the host's, since the repository may live there. It makes the UML kernel modules
# loadable, runs $VIPD_UML_DIR/cmd, writes its exit status to $VIPD_UML_DIR/rc and powers off.
# PID 1 must never exit (the guest would panic), hence no `set -e` and the final loop.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
mkdir -p /run/tmp && export TMPDIR=/run/tmp
date +%s.%N > "$VIPD_UML_DIR/ready"

# Debian ships the UML modules under /usr/lib/uml/modules/<release>; modprobe looks in
# /lib/modules. A private module root plus a wrapper registered as the kernel's modprobe
# makes both explicit loads and the kernel's own auto-loading (IPVS schedulers, tunnel
# devices) work without touching the host.
rel=$(uname -r)
mkdir -p /run/modroot/lib/modules
ln -s "/usr/lib/uml/modules/$rel" "/run/modroot/lib/modules/$rel"
printf '#!/bin/sh\nexec /sbin/modprobe -d /run/modroot "$@"\n' > /run/modprobe
chmod 0755 /run/modprobe
echo /run/modprobe > /proc/sys/kernel/modprobe
for m in ip_vs ip_vs_mh ip_vs_rr ip_vs_wrr ipip ip6_tunnel veth dummy; do
    /run/modprobe "$m" || echo "uml-init: cannot load module $m"
done
ip link set lo up

sh "$VIPD_UML_DIR/cmd" < /dev/null
echo $? > "$VIPD_UML_DIR/rc"
sync
halt -f -p
echo o > /proc/sysrq-trigger
while :; do sleep 60; done
