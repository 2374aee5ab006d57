#!/bin/bash
# Docker HEALTHCHECK for chorusd: exit 0 when GET /admin/healthcheck on this
# node answers 200 (the node knows a leader and its store works), 1 otherwise.
#
# The image has no curl; bash's /dev/tcp is enough for one HTTP/1.1 request.
# The address is the node's own gateway: $CHORUS_HTTP (the variable chorusd
# reads for --http), or the first argument. 0.0.0.0 is asked on 127.0.0.1.
set -u

addr=${1:-${CHORUS_HTTP:-127.0.0.1:8080}}
host=${addr%:*}
port=${addr##*:}
case "$host" in
'' | 0.0.0.0) host=127.0.0.1 ;;
esac

{ exec 3<>"/dev/tcp/$host/$port"; } 2>/dev/null || exit 1
printf 'GET /admin/healthcheck HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' \
    "$addr" >&3 || exit 1
# Status line: HTTP/1.1 200 OK
read -r -t 5 _ status _ <&3 || exit 1
[ "$status" = 200 ]
