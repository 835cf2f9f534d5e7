#!/usr/bin/env bash
# Start the local PostgreSQL, MariaDB and Redis servers the tests use, where
# they are installed but not running. Tests skip a service that is absent,
# unless ROBACCIA_REQUIRE_SERVICES=1 (as in CI), where they fail instead.
set -u
up() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_for() { for _ in $(seq 1 30); do up "$1" && return 0; sleep 0.5; done; return 1; }

if ! up 5432 && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_for 5432 || echo "PostgreSQL did not start"
fi
if ! up 3306 && [ -x /usr/sbin/mariadbd ]; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  wait_for 3306 || echo "MariaDB did not start"
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  wait_for 6379 || echo "Redis did not start"
fi
exit 0
