#!/bin/sh
# A Redis of the StatefulSet: a replica of the master the sentinels name, or, when no
# sentinel answers yet (the first start), of redis-0, which is the master then.
set -eu
PASSWORD="$(cat /etc/redis/secrets/redis-password)"
SENTINEL_PASSWORD="$(cat /etc/redis/secrets/redis-sentinel-password)"
LOBBY_PASSWORD="$(cat /etc/redis/secrets/redis-lobby-password)"
HOST_PASSWORD="$(cat /etc/redis/secrets/redis-host-password)"
ME="$(hostname).redis"
MASTER=""
for sentinel in redis-0.redis redis-1.redis redis-2.redis; do
  MASTER="$(timeout 2 redis-cli --no-auth-warning -a "$SENTINEL_PASSWORD" -h "$sentinel" -p 26379 sentinel get-master-addr-by-name mymaster 2>/dev/null | head -n 1)" || true
  [ -n "$MASTER" ] && break
done
[ -n "$MASTER" ] || MASTER=redis-0.redis
cat > /data/redis.conf <<CONF
# The pod's own address (docs/kubernetes.md, "Pod addresses").
bind $POD_IP
port 6379
dir /data
appendonly yes
# The default user (replication, the sentinels, the probes): redis-password.
requirepass $PASSWORD
masterauth $PASSWORD
# Each role of vinom its own user (--redis-user): vinom's keys and channels only, and
# only the commands the role sends (docs/scaling.md, "Redis users").
user vinom-lobby on >$LOBBY_PASSWORD resetkeys ~vinom:* resetchannels &vinom:* -@all +ping +select +role +eval +evalsha +subscribe +unsubscribe +time +get +set +del +exists +pexpire +pttl +sadd +srem +smembers +scard +sismember +pubsub|numsub +xadd +xack +xtrim +xreadgroup +xpending +xclaim +xinfo|groups +xgroup|create +hget +hmget +hset +incr +publish +xrange +xrevrange +zadd +zrange +zrank +zrem +rename +xautoclaim +xdel +xlen +xinfo|consumers +xgroup|delconsumer
user vinom-host on >$HOST_PASSWORD resetkeys ~vinom:* resetchannels &vinom:* -@all +ping +select +role +eval +evalsha +subscribe +unsubscribe +time +get +set +del +exists +pexpire +pttl +sadd +srem +smembers +scard +sismember +pubsub|numsub +xadd +xack +xtrim +xreadgroup +xpending +xclaim +xinfo|groups +xinfo|consumers +xgroup|create +xgroup|delconsumer +xread
replica-announce-ip $ME
# Below the container's memory limit (1Gi), with room for replication and AOF rewrite
# buffers; when full, writes fail (vinom says so) rather than keys silently evicted.
maxmemory 768mb
maxmemory-policy noeviction
CONF
if [ "$MASTER" != "$ME" ]; then
  echo "replicaof $MASTER 6379" >> /data/redis.conf
fi
exec redis-server /data/redis.conf
