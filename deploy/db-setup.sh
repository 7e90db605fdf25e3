#!/usr/bin/env bash
# Creates the MySQL/MariaDB databases and users chat-cluster needs, through the
# local root account (socket auth, empty password). Idempotent: run it as often
# as you like. Starts the server if it is installed but not running.
#
#   chat_test / chat_test  on database chat_test  (the store contract tests)
#   chat      / chat       on database chat       (the local cluster)
#
# Usage: deploy/db-setup.sh [--reset-test]
#   --reset-test   drop and recreate the chat_test database (a clean start for `make test`)
#
# Not for production: the passwords are fixed and public.
set -euo pipefail

INSTALL_HINT="apt-get install -y mariadb-server mariadb-client"
WAIT_SECONDS=30

reset_test=0
for arg in "$@"; do
    case "$arg" in
        --reset-test) reset_test=1 ;;
        -h | --help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "db-setup: unknown argument: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

client=""
for candidate in mariadb mysql; do
    if command -v "$candidate" >/dev/null 2>&1; then
        client="$(command -v "$candidate")"
        break
    fi
done
if [ -z "$client" ]; then
    echo "db-setup: no MySQL/MariaDB client (mariadb or mysql) found." >&2
    echo "db-setup: install it with: $INSTALL_HINT" >&2
    exit 1
fi

root_sql() {
    "$client" --user=root --batch --skip-column-names "$@"
}

can_connect() {
    root_sql -e "SELECT 1" >/dev/null 2>&1
}

start_server() {
    local server=""
    for candidate in /usr/sbin/mariadbd /usr/sbin/mysqld; do
        if [ -x "$candidate" ]; then
            server="$candidate"
            break
        fi
    done
    if [ -z "$server" ]; then
        echo "db-setup: cannot connect to MySQL/MariaDB and no server is installed." >&2
        echo "db-setup: install it with: $INSTALL_HINT" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "db-setup: the server is not running and only root can start it; run this script as root." >&2
        exit 1
    fi
    echo "db-setup: the server is not running; starting $server"
    if [ -d /run/systemd/system ] && command -v service >/dev/null 2>&1; then
        service mariadb start || service mysql start
    else
        # The socket and pid file live in /run/mysqld, which is gone after a reboot.
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        start-stop-daemon --start --oknodo --background --exec "$server"
    fi
    local waited=0
    until can_connect; do
        if [ "$waited" -ge "$WAIT_SECONDS" ]; then
            echo "db-setup: the server did not accept connections within ${WAIT_SECONDS}s" >&2
            echo "db-setup: see its error log (e.g. /var/log/mysql/error.log or journalctl -u mariadb)" >&2
            exit 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

if ! can_connect; then
    start_server
fi

if [ "$reset_test" -eq 1 ]; then
    echo "db-setup: dropping database chat_test"
    root_sql -e "DROP DATABASE IF EXISTS chat_test"
fi

# `CREATE USER IF NOT EXISTS` + `ALTER USER` keeps re-runs idempotent and repairs a changed password.
root_sql <<'SQL'
CREATE DATABASE IF NOT EXISTS chat_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE DATABASE IF NOT EXISTS chat CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE USER IF NOT EXISTS 'chat_test'@'localhost' IDENTIFIED BY 'chat_test';
CREATE USER IF NOT EXISTS 'chat_test'@'127.0.0.1' IDENTIFIED BY 'chat_test';
ALTER USER 'chat_test'@'localhost' IDENTIFIED BY 'chat_test';
ALTER USER 'chat_test'@'127.0.0.1' IDENTIFIED BY 'chat_test';
GRANT ALL PRIVILEGES ON chat_test.* TO 'chat_test'@'localhost';
GRANT ALL PRIVILEGES ON chat_test.* TO 'chat_test'@'127.0.0.1';

CREATE USER IF NOT EXISTS 'chat'@'localhost' IDENTIFIED BY 'chat';
CREATE USER IF NOT EXISTS 'chat'@'127.0.0.1' IDENTIFIED BY 'chat';
ALTER USER 'chat'@'localhost' IDENTIFIED BY 'chat';
ALTER USER 'chat'@'127.0.0.1' IDENTIFIED BY 'chat';
GRANT ALL PRIVILEGES ON chat.* TO 'chat'@'localhost';
GRANT ALL PRIVILEGES ON chat.* TO 'chat'@'127.0.0.1';

FLUSH PRIVILEGES;
SQL

# Prove the accounts work over TCP, the way the server and the tests connect.
for account in chat_test chat; do
    if ! "$client" --protocol=tcp --host=127.0.0.1 --port=3306 --user="$account" --password="$account" \
        --database="$account" -e "SELECT 1" >/dev/null; then
        echo "db-setup: user $account cannot log in over TCP at 127.0.0.1:3306" >&2
        exit 1
    fi
done

echo "db-setup: ok: mysql://chat_test:chat_test@127.0.0.1:3306/chat_test and mysql://chat:chat@127.0.0.1:3306/chat"
