#!/bin/bash
# Liveness check of imboxd (imbox-health.timer, every 20 s): asks
# http://127.0.0.1/health and restarts imboxd after three failures in a row.
# A second net beside systemd's watchdog (WatchdogSec=): imboxd's WATCHDOG=1
# says its runtime and its database answer, this says the HTTP listener does.
# 507 (storage_full: the data disk is full, writes refused, reads going on)
# counts as alive: a restart frees no space, and writes resume by themselves.
set -uo pipefail
failures_file=/run/imbox/health-failures
systemctl -q is-active imboxd.service || { rm -f "$failures_file"; exit 0; }
if exec 3<>/dev/tcp/127.0.0.1/80 && printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 \
    && timeout 10 head -n1 <&3 | grep -qE ' (200|507) '; then
    rm -f "$failures_file"
    exit 0
fi
n=$(( $(cat "$failures_file" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$failures_file"
echo "imbox: imboxd did not answer /health ($n in a row)"
if [ "$n" -ge 3 ]; then
    echo "imbox: restarting imboxd"
    rm -f "$failures_file"
    systemctl restart imboxd.service
fi
