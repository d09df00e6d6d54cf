#!/bin/sh
# nfgate prerm: on removal (not upgrade) stop the daemon and remove its
# kernel rules, so that a removed firewall does not keep dropping new
# flows with no reader on its queues.
set -e
case "$1" in
remove|deconfigure)
	if [ -d /run/systemd/system ]; then
		systemctl stop nfgate.service >/dev/null 2>&1 || true
	fi
	/usr/sbin/nfgate cleanup || true
	;;
esac
exit 0
