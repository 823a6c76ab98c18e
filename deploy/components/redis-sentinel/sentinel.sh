#!/bin/sh
# A sentinel of the StatefulSet, watching the master `mymaster` (vinom's --redis names it).
set -eu
PASSWORD="$(cat /etc/redis/secrets/redis-password)"
SENTINEL_PASSWORD="$(cat /etc/redis/secrets/redis-sentinel-password)"
ME="$(hostname).redis"
MASTER=""
for sentinel in redis-0.redis redis-1.redis redis-2.redis; do
  MASTER="$(timeout 2 redis-cli --no-auth-warning -a "$SENTINEL_PASSWORD" -h "$sentinel" -p 26379 sentinel get-master-addr-by-name mymaster 2>/dev/null | head -n 1)" || true
  [ -n "$MASTER" ] && break
done
[ -n "$MASTER" ] || MASTER=redis-0.redis
mkdir -p /data/sentinel
cat > /data/sentinel/sentinel.conf <<CONF
# The pod's own address (docs/kubernetes.md, "Pod addresses").
bind $POD_IP
port 26379
dir /data/sentinel
# Clients (vinom: --redis-sentinel-password-file) and the other sentinels give it.
requirepass $SENTINEL_PASSWORD
sentinel sentinel-pass $SENTINEL_PASSWORD
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $ME
sentinel monitor mymaster $MASTER 6379 2
sentinel auth-pass mymaster $PASSWORD
sentinel down-after-milliseconds mymaster 5000
sentinel failover-timeout mymaster 60000
CONF
exec redis-server /data/sentinel/sentinel.conf --sentinel
