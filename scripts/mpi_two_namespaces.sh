#!/usr/bin/env bash
# Data-parallel training across a real network link: two network namespaces ("machines") joined
# by a veth pair, one MPI process in each, OpenMPI over TCP between them (no shared memory), its
# launcher reaching the second "machine" through `ip netns exec` instead of ssh. Trains the
# dates model on 2 processes with --batch 8 and checks that it equals one process with --batch 16
# and that the gradients crossed the link (the veth's byte counters).
# Usage: scripts/mpi_two_namespaces.sh ATTEND_BINARY
# Needs root, iproute2 and mpirun; exits 77 (skipped) with a message where it cannot run.
set -euo pipefail

attend=$(realpath "${1:?usage: $0 ATTEND_BINARY}")
skip() { echo "mpi_two_namespaces: skipped: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root (network namespaces)"
command -v ip > /dev/null || skip "needs iproute2 (ip)"
command -v mpirun > /dev/null || skip "needs mpirun (OpenMPI)"

tag=att$$
a=${tag}a b=${tag}b
work=$(mktemp -d)
cleanup() {
  ip netns del "$a" 2> /dev/null || true
  ip netns del "$b" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$a" 2> /dev/null || skip "cannot create network namespaces here"
ip netns add "$b"
ip link add "v$a" type veth peer name "v$b"
ip link set "v$a" netns "$a"
ip link set "v$b" netns "$b"
ip -n "$a" addr add 10.77.0.1/24 dev "v$a"
ip -n "$b" addr add 10.77.0.2/24 dev "v$b"
for ns in "$a" "$b"; do ip -n "$ns" link set lo up; done
ip -n "$a" link set "v$a" up
ip -n "$b" link set "v$b" up

# OpenMPI's rsh launcher runs AGENT HOST COMMAND: here, COMMAND inside HOST's namespace, with a
# host name of its own (so that OpenMPI sees two nodes).
cat > "$work/agent" << EOF
#!/usr/bin/env bash
host=\$1; shift
case "\$host" in
  10.77.0.1) ns=$a ;;
  10.77.0.2) ns=$b ;;
  *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" unshare --uts sh -c "hostname node-\$ns; \$*"
EOF
chmod +x "$work/agent"

common=(--task dates --dates-train 1000 --seed 3 --threads 1 --dropout 0 --max-steps 24 --eval-every 8)
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$attend" train "${common[@]}" --batch 16 --out "$work/one" > /dev/null 2>&1
rx() { ip -n "$b" -s -j link show "v$b" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["stats64"]["rx"]["bytes"])'; }
before=$(rx)
ip netns exec "$a" unshare --uts sh -c "hostname node-$a; \
  mpirun --allow-run-as-root --host 10.77.0.1,10.77.0.2 -np 2 --mca plm_rsh_agent $work/agent \
    --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 \
    -x OMP_NUM_THREADS=1 -x OPENBLAS_NUM_THREADS=1 \
    $attend train ${common[*]} --batch 8 --out $work/two" > "$work/log" 2>&1 || {
  cat "$work/log"
  echo "mpi_two_namespaces: FAILED: the two-namespace run failed"
  exit 1
}
after=$(rx)
crossed=$((after - before))
params=$(grep -o '[0-9]* parameters' "$work/log" | head -1 | cut -d' ' -f1)
# 24 updates, each all-reducing every gradient (4 bytes per parameter) across the link.
need=$((24 * params * 4))
echo "mpi_two_namespaces: $params parameters; $crossed bytes reached the second namespace over the veth (>= $need expected)"
[ "$crossed" -ge "$need" ] || { echo "mpi_two_namespaces: FAILED: too little traffic crossed the link"; exit 1; }
python3 - "$work/one/metrics.jsonl" "$work/two/metrics.jsonl" << 'EOF'
import json, sys
one, two = ([json.loads(l)["train_loss"] for l in open(p)] for p in sys.argv[1:])
print("mpi_two_namespaces: training loss, 1 process x batch 16:", one)
print("mpi_two_namespaces: training loss, 2 namespaces x batch 8:", two)
assert len(one) == len(two) == 3 and all(abs(x - y) <= 1e-5 * abs(x) for x, y in zip(one, two)), "losses differ"
EOF
grep "processes:" "$work/log" || true
echo "mpi_two_namespaces: passed"
