#!/bin/sh
# nfgate postinst: register the unit; never start or enable a firewall on
# its own. On upgrade, restart a running daemon so the new binary serves
# (queues are rebound before the hooks are rewritten; conntrack marks
# survive, so decided flows stay decided).
set -e
chmod 0750 /etc/nfgate 2>/dev/null || true
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	if [ "$1" = "configure" ] && [ -n "$2" ]; then
		systemctl try-restart nfgate.service >/dev/null 2>&1 || true
	fi
fi
exit 0
