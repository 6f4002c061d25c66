#!/usr/bin/env bash
# On a real 2-node Slurm cluster (slurm_cluster.sh): a jobd head outside the
# allocation, and one jobctl per node started by srun, each reaching the head
# by the cluster file alone. Needs root (slurmd does): see slurm_test_setup.sh.
#
#   slurm_clients_test.sh BUILD_DIR
source "$(dirname "$0")/slurm_test_setup.sh"
# n1 and n2 are this host, the head's, where the cluster file would lead a
# client to its local socket: these clients take the TCP way, as on other hosts.
export JOBD_CLUSTER_LOCAL=0
logs=("$work/jobd.log")
cleanup() { "$build/bin/jobctl" shutdown >/dev/null 2>&1; }
"$build/bin/jobd" --detach --log-file "$work/jobd.log" --listen tcp://127.0.0.1:0 \
  --cluster-file "$work/cluster" >/dev/null
[ "$(stat -c %a "$work/cluster")" = 600 ] || fail "the cluster file is not mode 0600"

# One jobctl per node, each mapping its node's name and rank through the head.
out=$(timeout 60 srun -N2 --ntasks-per-node=1 --export=ALL bash -c \
  "'$build/bin/jobctl' --cluster-file '$work/cluster' map identity \"\$SLURMD_NODENAME-\$SLURM_PROCID\"") \
  || fail "srun exited $?: $out"
sorted=$(echo "$out" | sort | tr '\n' ' ')
[ "$sorted" = "n1-0 n2-1 " ] || fail "expected a result from each node (n1-0 n2-1), got: $sorted"

# A client on a node with the wrong keys is refused; the head serves on.
sed 's/^client_secret .*/client_secret 0000000000000000000000000000000000000000/' "$work/cluster" \
  > "$work/wrong"
chmod 0600 "$work/wrong"
if timeout 60 srun -N1 -w n2 --export=ALL "$build/bin/jobctl" --cluster-file "$work/wrong" ping \
  > "$work/wrong.out" 2>&1; then
  fail "a client with the wrong keys was answered"
fi
grep -q "keys are not its current ones" "$work/wrong.out" || fail "no clear error: $(cat "$work/wrong.out")"
again=$(timeout 60 srun -N1 -w n1 --export=ALL "$build/bin/jobctl" --cluster-file "$work/cluster" \
  map identity still-serving) || fail "the head stopped serving"
[ "$again" = still-serving ] || fail "got '$again'"
echo "ok: both nodes reached the head by the cluster file; wrong keys refused"
