#!/bin/busybox sh
# /init of the Linux guests' initramfs: runs faultbench as the kernel command
# line asks, prints each result line on the serial console, powers off.
#   fb_runs=quiet:1,writer:2   mode:threads, in order
#   fb_dur=5                   seconds per run
#   fb_pages=2048              pages mapped and touched per iteration
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys

runs=quiet:1; dur=5; pages=2048
for kv in $(cat /proc/cmdline); do
    case "$kv" in
        fb_runs=*)  runs="${kv#fb_runs=}" ;;
        fb_dur=*)   dur="${kv#fb_dur=}" ;;
        fb_pages=*) pages="${kv#fb_pages=}" ;;
    esac
done

echo "bench-guest kernel=$(uname -r) cpus=$(grep -c ^processor /proc/cpuinfo)"
for run in $(echo "$runs" | tr ',' ' '); do
    /faultbench -m "${run%%:*}" -t "${run#*:}" -d "$dur" -p "$pages" 2>&1
done
echo "bench-guest done"
poweroff -f
