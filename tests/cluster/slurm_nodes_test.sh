#!/usr/bin/env bash
# On a real 2-node Slurm cluster (slurm_cluster.sh): `srun -N2 jobd --slurm`
# makes rank 0 (n1) the head and rank 1 (n2) a node; a map from outside the
# allocation runs on both; the node's jobd, kill -9ed mid-job, costs no result
# (each item's once, in order); nothing is left in /dev/shm. Needs root: see
# slurm_test_setup.sh.
#
#   slurm_nodes_test.sh BUILD_DIR
source "$(dirname "$0")/slurm_test_setup.sh"
logs=("$work/rank0.log" "$work/rank1.log")
srun_pid=
cleanup() {
  "$build/bin/jobctl" --cluster-file "$work/cluster" shutdown >/dev/null 2>&1 || true
  if [ -n "$srun_pid" ]; then
    timeout 20 tail --pid="$srun_pid" -f /dev/null 2>/dev/null || kill -9 "$srun_pid" 2>/dev/null || true
  fi
}
segments_of() { ls /dev/shm | grep -E -- "-($(echo "$*" | tr ' ' '|'))-" || true; }
cat > "$work/jobd.yaml" <<CONF
pools:
  cpu:
    workers: auto
CONF
srun -N2 --ntasks-per-node=1 --cpus-per-task=2 --export=ALL --output="$work/rank%t.log" \
  "$build/bin/jobd" --slurm --config "$work/jobd.yaml" --cluster-file "$work/cluster" \
  --listen tcp://127.0.0.1:0 &
srun_pid=$!
for _ in $(seq 150); do
  grep -q "node n2 (" "$work/rank0.log" 2>/dev/null && break
  sleep 0.2
done
grep -q "node n2 (" "$work/rank0.log" || fail "the node n2 did not join the head within 30 s"
grep -q "serving .* with 2 workers" "$work/rank1.log" || fail "workers: auto is not the step's 2 CPUs"
# The jobds srun started (srun's own command line matches too: its environ has no rank).
pids=$(pgrep -f -- "jobd --slurm" | tr '\n' ' ')
node_pid=
for pid in $pids; do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx SLURM_PROCID=1; then node_pid=$pid; fi
done
[ -n "$node_pid" ] || fail "cannot find the node's jobd among: $pids"

# From outside the allocation, by the cluster file: every item says where it ran.
seq 1 100 > "$work/in"
"$build/bin/jobctl" --cluster-file "$work/cluster" map --chunksize 1 --shell --exec \
  'sleep 0.1; echo {} $JOBD_NODE' < "$work/in" > "$work/out" 2> "$work/err" &
job=$!
for _ in $(seq 100); do grep -q " n2$" "$work/out" && break; sleep 0.1; done
grep -q " n2$" "$work/out" || fail "the node n2 ran no item: $(head -c 2000 "$work/out" "$work/err")"
kill -9 "$node_pid"
wait "$job" || fail "jobctl failed: $(head -c 2000 "$work/err")"
cut -d' ' -f1 "$work/out" | cmp -s - "$work/in" || fail "results missing, repeated or out of order"
[ "$(cut -d' ' -f2 "$work/out" | sort -u | tr '\n' ' ')" = "n1 n2 " ] || fail "not both nodes ran items"
grep -q "node n2 .* lost" "$work/rank0.log" || fail "the head did not declare n2 lost"

"$build/bin/jobctl" --cluster-file "$work/cluster" shutdown >/dev/null
timeout 30 tail --pid="$srun_pid" -f /dev/null || fail "the head did not stop"
srun_pid=
# The killed node's pages go when the next jobd starts on its host.
"$build/bin/jobd" --detach --log-file "$work/reaper.log" >/dev/null
"$build/bin/jobctl" shutdown >/dev/null
left=$(segments_of $pids)
[ -z "$left" ] || fail "left in /dev/shm: $left"
echo "ok: both nodes ran the map; n2 killed mid-job cost no result; nothing left"
