#!/usr/bin/env bash
# Optional, as root, after packaging/build.sh: both packages under a real
# systemd, which packaging/test.sh cannot have (no systemd runs as PID 1
# here). systemd boots as PID 1 of new pid, mount, network, UTS and IPC
# namespaces, on an overlay of / whose writes go to a tmpfs, so the machine
# keeps nothing but the cgroup folders systemd makes, which are removed at the
# end. Checks that the sandboxed daemon serves through the socket, reloads,
# keeps to its sandbox, that the drop-in example lets it reach a Redis replay
# store at the allowed address only, and what the maintainer scripts do to
# running units (start, restart on upgrade, an administrator's disable kept,
# stop on removal).
#
# Needs unshare, nsenter, overlayfs, python3, redis-server and redis-cli
# (apt-get install redis-server), and cgroups that systemd can use.
set -euo pipefail
cd "$(dirname "$0")/../.."
. tests/shell/lib.sh
unset XMPP_TOKEN_AUTH_CONFIG   # the installed default path is under test

[ "$(id -u)" -eq 0 ] || { echo "live-test.sh boots systemd: run it as root"; exit 1; }
deb=$(ls target/xmpp-token-auth_*.deb)
rpm=$(ls target/xmpp-token-auth-*.rpm)
THRESHOLD=9    # systemd-analyze security, as in check.sh: SAFE

box=$(mktemp -d /var/tmp/xta-live.XXXXXX)
mkdir -p "$box/up" "$box/merged"
cgroups_before=$(find /sys/fs/cgroup -mindepth 2 -type d | sort)
pid1=
shutdown() {
    if [ -n "$pid1" ] && kill -0 "$pid1" 2>/dev/null; then
        kill -s SIGRTMIN+4 "$pid1" 2>/dev/null || true     # poweroff
        for _ in $(seq 100); do kill -0 "$pid1" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid1" 2>/dev/null || true
    fi
    # The cgroup folders the container's systemd made, deepest first.
    comm -13 <(echo "$cgroups_before") <(find /sys/fs/cgroup -mindepth 2 -type d | sort) |
        awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- | xargs -r rmdir 2>/dev/null || true
    rm -rf "$box"
}
trap 'shutdown; rm -rf "$work"' EXIT

# PID 1 of the new namespaces: mount the overlay, then systemd in it.
cat > "$box/boot" <<'BOOT'
set -e
box=$1
mount -t tmpfs tmpfs "$box/up"
mkdir -p "$box/up/upper" "$box/up/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$box/up/upper,workdir=$box/up/work" "$box/merged"
root=$box/merged
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"          # no udev in the container
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for node in null zero full random urandom tty; do
    touch "$root/dev/$node" && mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
# Containers built for image building forbid starting services.
rm -f "$root/usr/sbin/policy-rc.d"
printf '[Unit]\nDescription=xmpp-token-auth live test\nRequires=sockets.target\nAfter=sockets.target\n' \
    > "$root/etc/systemd/system/xta-live.target"
# pivot_root, not chroot: a chrooted process may not make user namespaces
# (PrivateUsers=).
cd "$root"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
exec env container=xta-live /lib/systemd/systemd --system --unit=xta-live.target
BOOT
unshare --mount --pid --net --uts --ipc --fork --propagation private bash "$box/boot" "$box" \
    >"$box/console" 2>&1 &
starter=$!
for _ in $(seq 100); do pid1=$(pgrep -P "$starter" || true); [ -n "$pid1" ] && break; sleep 0.1; done
[ -n "$pid1" ] || { cat "$box/console"; echo "systemd did not start"; exit 1; }
inside() { nsenter -t "$pid1" -m -p -n -u -i -r -w "$@"; }
for _ in $(seq 300); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.1
done
echo "== systemd $(inside systemctl --version | head -1 | cut -d' ' -f2) booted in a container: $state"
[ "$state" = degraded ] && inside systemctl --failed --no-legend --plain
case "$state" in running|degraded) ;; *) cat "$box/console"; exit 1 ;; esac

inside mkdir -m 755 /xta-live
inside sh -c 'cat > /xta-live/pkg.deb' < "$deb"
inside sh -c 'cat > /xta-live/pkg.rpm' < "$rpm"
inside sh -c 'cat > /xta-live/ask.py' <<'PYTHON'
# ask LINE...: sends the lines on one connection, prints the replies.
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect("/run/xmpp-token-auth/auth.sock")
except OSError as e:
    print(e.strerror)
    sys.exit()
s.sendall("".join(line + "\n" for line in sys.argv[1:]).encode())
replies = b""
while replies.count(b"\n") < len(sys.argv) - 1:
    chunk = s.recv(4096)
    if not chunk:
        break
    replies += chunk
print(" ".join(replies.decode().split()))
PYTHON
client=xta-live-client    # stands for Prosody's user, in the group
stranger=xta-live-stranger
ask() { inside runuser -u "$client" -- python3 /xta-live/ask.py "$@"; }
# state: "SOCKET SERVICE ENABLEMENT", e.g. "active inactive enabled".
state() {
    enabled=$(inside systemctl is-enabled xmpp-token-auth.socket 2>/dev/null || true)
    echo "$(inside systemctl is-active xmpp-token-auth.socket xmpp-token-auth.service | tr '\n' ' ')${enabled:-gone}"
}
mainpid() { inside systemctl show -p MainPID --value xmpp-token-auth.service; }
token() { inside xmpp-token-auth generate "$1"; }

echo "== install"
inside dpkg -i /xta-live/pkg.deb >"$work/install" 2>&1 || { cat "$work/install"; exit 1; }
check "the socket is enabled and listening; the service waits for a connection" "active inactive enabled" "$(state)"
check "the socket: root:xmpp-token-auth 0660" "root:xmpp-token-auth 660" \
    "$(inside stat -c '%U:%G %a' /run/xmpp-token-auth/auth.sock)"
inside useradd -M -N -g nogroup -G xmpp-token-auth -s /usr/sbin/nologin "$client"
inside useradd -M -N -g nogroup -s /usr/sbin/nologin "$stranger"
alice=$(token alice@example.org)
check "a member of the group: a token, the same again, isuser" "1 0 1" \
    "$(ask "auth:alice:example.org:$alice" "auth:alice:example.org:$alice" isuser:alice:example.org)"
check "another user may not connect" "Permission denied" \
    "$(inside runuser -u "$stranger" -- python3 /xta-live/ask.py isuser:alice:example.org)"
check "the first connection started the daemon, as its user and group" "active|xmpp-token-auth xmpp-token-auth" \
    "$(inside systemctl is-active xmpp-token-auth.service)|$(inside ps -o user:40=,group:40= -p "$(mainpid)" | tr -s ' ')"
check "the daemon logs to the journal" "yes" \
    "$(inside journalctl -u xmpp-token-auth.service --no-pager | grep -q 'auth alice@example.org: accepted' && echo yes)"
check "a stdio helper refuses the token the daemon accepted (shared replay store)" "00 02 00 00" \
    "$(frame "auth:alice:example.org:$alice" | inside xmpp-token-auth 2>/dev/null | hex)"
check "the sandbox as systemd applies it: exposure at most $THRESHOLD" "0" \
    "$(inside systemd-analyze security --threshold="$THRESHOLD" xmpp-token-auth.service >"$work/security" 2>&1; echo $?)"
grep 'Overall' "$work/security"

echo "== reload"
pid=$(mainpid)
bob=$(token bob@example.org)
inside sh -c 'echo "otp_window = 99" >> /etc/xmpp-token-auth/config.toml'
inside systemctl reload xmpp-token-auth
sleep 0.5
check "a bad configuration: reload keeps the daemon and the one in force, and says why" "$pid|1|yes" \
    "$(mainpid)|$(ask "auth:bob:example.org:$bob")|$(inside journalctl -u xmpp-token-auth.service --no-pager | grep -q 'otp_window = 99 is out of range' && echo yes)"
inside sed -i '$d' /etc/xmpp-token-auth/config.toml
inside systemctl reload xmpp-token-auth
sleep 0.5
check "a good one: loaded, same daemon" "$pid|yes" \
    "$(mainpid)|$(inside journalctl -u xmpp-token-auth.service --no-pager | tail -3 | grep -q 'loaded /etc/xmpp-token-auth/config.toml' && echo yes)"

echo "== a Redis replay store and the drop-in example redis-network.conf"
# A Redis server on two addresses of the container's loopback; the daemon's
# replay store on one of them.
dropins=/etc/systemd/system/xmpp-token-auth.service.d
inside ip link set lo up
inside ip addr add 192.0.2.10/32 dev lo
inside redis-server --bind 127.0.0.1 192.0.2.10 --port 6379 --protected-mode no \
    --save '' --appendonly no --daemonize yes --logfile /xta-live/redis.log
inside cp /etc/xmpp-token-auth/config.toml /xta-live/config.toml
# with_store URL: the daemon restarted with replay_store = URL; then a fresh
# token twice, and the number of keys in Redis.
with_store() {
    inside sed -i "s|^replay_store = .*|replay_store = \"$1\"|" /etc/xmpp-token-auth/config.toml
    inside systemctl daemon-reload
    inside systemctl restart xmpp-token-auth.service
    token=$(token carol@example.org)
    echo "$(ask "auth:carol:example.org:$token" "auth:carol:example.org:$token")|$(inside redis-cli -h 127.0.0.1 dbsize)"
}
check "as shipped, the daemon cannot reach Redis: tokens are refused (fail closed)" "0 0|0" \
    "$(with_store redis://127.0.0.1:6379/0)"
inside mkdir -p $dropins
inside cp /usr/share/doc/xmpp-token-auth/examples/redis-network.conf $dropins/
check "with the drop-in: a token once, then refused, remembered in Redis" "1 0|1" \
    "$(with_store redis://127.0.0.1:6379/0)"
check "with the drop-in: an address outside IPAddressAllow= stays out of reach" "0 0|1" \
    "$(with_store redis://192.0.2.10:6379/0)"
inside rm -rf $dropins
inside cp /xta-live/config.toml /etc/xmpp-token-auth/config.toml
inside systemctl daemon-reload
inside systemctl restart xmpp-token-auth.service

echo "== upgrade, disable, remove, purge"
pid=$(mainpid)
inside dpkg -i /xta-live/pkg.deb >/dev/null 2>&1
check "an upgrade restarts the daemon, keeps the socket enabled" "active active enabled|restarted" \
    "$(state)|$([ "$(mainpid)" != "$pid" ] && echo restarted)"
inside systemctl disable --now xmpp-token-auth.socket xmpp-token-auth.service >/dev/null 2>&1
inside dpkg -i /xta-live/pkg.deb >/dev/null 2>&1
check "a socket the administrator disabled and stopped stays so across an upgrade" "inactive inactive disabled" "$(state)"
inside systemctl enable --now xmpp-token-auth.socket >/dev/null 2>&1
check "systemctl enable --now xmpp-token-auth.socket brings it back" "1" "$(ask isuser:alice:example.org)"
inside dpkg -r xmpp-token-auth >/dev/null 2>&1
check "remove stops both and removes the socket file" "inactive inactive|absent" \
    "$(inside systemctl is-active xmpp-token-auth.socket xmpp-token-auth.service | tr '\n' ' ' | sed 's/ $//')|$(inside test -e /run/xmpp-token-auth/auth.sock && echo present || echo absent)"
inside dpkg --purge xmpp-token-auth >/dev/null 2>&1
check "purge leaves no unit, link or mask" "" \
    "$(inside find /etc/systemd/system /lib/systemd/system /var/lib/systemd -name '*xmpp-token-auth*')"

echo "== rpm"
inside rm -rf /etc/xmpp-token-auth
inside rpm -i --nodeps --force-debian /xta-live/pkg.rpm >/dev/null 2>&1
check "%post presets (enables) the socket and starts nothing, as on Fedora" "inactive inactive enabled" "$(state)"
inside systemctl start xmpp-token-auth.socket
check "started, it serves" "1" "$(ask isuser:alice:example.org)"
pid=$(mainpid)
inside rpm -U --replacepkgs --nodeps --force-debian /xta-live/pkg.rpm >/dev/null 2>&1
check "an upgrade restarts the running daemon (%postun try-restart)" "restarted" \
    "$([ "$(mainpid)" != "$pid" ] && [ "$(mainpid)" != 0 ] && echo restarted)"
inside rpm -e xmpp-token-auth >/dev/null 2>&1
check "erase stops and disables both (%preun)" "inactive inactive|" \
    "$(inside systemctl is-active xmpp-token-auth.socket xmpp-token-auth.service | tr '\n' ' ' | sed 's/ $//')|$(inside find /etc/systemd/system -name '*xmpp-token-auth*')"

finish
