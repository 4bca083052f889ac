#!/usr/bin/env bash
# CPG throughput through three aisexec, each in its own network namespace on one bridge,
# over kernel UDP (unicast) and over DPDK (net_af_packet on the namespace's eth0), same
# topology, same run. One `aisctl cpg send --batch 64` per node; prints each sender's line.
#
# Needs root, iproute2, and binaries built with DPDK:
#   cargo build --release --features ais/dpdk
#   sudo bench/scripts/dpdk-vs-udp.sh [COUNT] [SIZE] [MTU]
# Everything it creates (namespaces, /tmp/oais-dvu.*) is removed at the end.
set -euo pipefail
COUNT=${1:-20000}
SIZE=${2:-1024}
MTU=${3:-1500}
cd "$(dirname "$0")/../.."
BIN=target/release
[ -x "$BIN/aisexec" ] && [ -x "$BIN/aisctl" ] || { echo "build first: cargo build --release --features ais/dpdk" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }

P="dvu$$"
DIR=$(mktemp -d /tmp/oais-dvu.XXXXXX)
cleanup() {
  pkill -TERM -f "aisexec -c $DIR/" 2>/dev/null || true
  sleep 0.5
  pkill -KILL -f "aisexec -c $DIR/" 2>/dev/null || true
  for i in 1 2 3 br; do ip netns del "$P$i" 2>/dev/null || true; done
  rm -rf "$DIR" /var/run/dpdk/"$P"*
}
trap cleanup EXIT

ip netns add "${P}br"
ip -n "${P}br" link add br0 type bridge
ip -n "${P}br" link set br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "${P}br" link set br0 mtu "$MTU" up
for i in 1 2 3; do
  ip netns add "$P$i"
  ip -n "$P$i" link set lo up
  ip -n "$P$i" link add eth0 mtu "$MTU" type veth peer name vh$i netns "${P}br"
  ip -n "$P$i" addr add 10.99.0.$i/24 dev eth0
  ip -n "$P$i" link set eth0 up
  ip -n "${P}br" link set vh$i mtu "$MTU" master br0 up
done
$BIN/ais-keygen --keyfile "$DIR/authkey" >/dev/null

if [ "$MTU" -gt 1500 ]; then FRAMESZ=10240; BLOCKSZ=20480; else FRAMESZ=2048; BLOCKSZ=4096; fi

config() { # transport node
  local t=$1 n=$2 d="$DIR/$1/node$2"
  mkdir -p "$d"
  {
    printf '[totem]\nnodeid = %s\ntransport = "%s"\nnetmtu = %s\nkeyfile = "%s"\n\n' "$n" "$t" "$MTU" "$DIR/authkey"
    printf '[totem.interface]\nmcastport = 5405\n\n'
    for h in 1 2 3; do printf '[[nodelist.node]]\nnodeid = %s\nring0_addr = "10.99.0.%s"\n\n' "$h" "$h"; done
    if [ "$t" = dpdk ]; then
      printf '[dpdk]\nport = "net_af_packet0"\nmin_data_room = %s\nmbufs = 4095\n' $((FRAMESZ + 128))
      printf 'eal_args = ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry", "-l", "0", "--file-prefix", "%s%s", "--vdev=net_af_packet0,iface=eth0,framesz=%s,blocksz=%s"]\n\n' "$P" "$n" "$FRAMESZ" "$BLOCKSZ"
    fi
    printf '[aisexec]\nipc_socket = "%s/aisexec.sock"\nstate_dir = "%s"\n' "$d" "$d"
  } > "$d/aisexec.toml"
}

run() { # transport
  local t=$1 pids=() senders=()
  for n in 1 2 3; do
    config "$t" "$n"
    ip netns exec "$P$n" "$BIN/aisexec" -c "$DIR/$t/node$n/aisexec.toml" > "$DIR/$t/node$n/log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 100); do
    if $BIN/aisctl -c "$DIR/$t/node1/aisexec.toml" status --json 2>/dev/null | grep -q '"members":\[1,2,3\]'; then break; fi
    sleep 0.1
  done
  echo "== $t, $SIZE-byte messages, MTU $MTU, 3 senders x $COUNT, --batch 64 (as many as fit 192 KiB)"
  for n in 1 2 3; do
    $BIN/aisctl -c "$DIR/$t/node$n/aisexec.toml" cpg send bench --count "$COUNT" --size "$SIZE" --batch 64 > "$DIR/$t/send$n" 2>&1 &
    senders+=($!)
  done
  for p in "${senders[@]}"; do wait "$p" || true; done
  cat "$DIR"/"$t"/send*
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for p in "${pids[@]}"; do wait "$p" || true; done
}

run udpu
run dpdk
