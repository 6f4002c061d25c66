#!/usr/bin/env bash
# A real 2-node Slurm cluster on this host, for the cluster tests: munged,
# slurmctld, and two slurmd (nodes n1 and n2, both at 127.0.0.1), all of
# them private to DIR (config, state, logs, sockets), run as root.
#
#   slurm_cluster.sh up DIR     start it; prints the line to export SLURM_CONF
#   slurm_cluster.sh down DIR   stop it (and whatever its steps left running)
#
# Ports: slurmctld on 17000, slurmd on 17001 and 17002 ($JOBD_SLURM_PORT
# moves the three up). Needs Debian's slurm-wlm and munge.
set -euo pipefail

usage() { echo "usage: $0 up|down DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(realpath -m "$2")
port=${JOBD_SLURM_PORT:-17000}

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: slurmd must run as root (it starts job steps as their user); run as root" >&2
  exit 1
fi

stop_pid_file() {
  local file=$1
  [ -f "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

down() {
  stop_pid_file "$dir/slurmd-n1.pid"
  stop_pid_file "$dir/slurmd-n2.pid"
  stop_pid_file "$dir/slurmctld.pid"
  stop_pid_file "$dir/munged.pid"
}

up() {
  for program in munged slurmctld slurmd srun; do
    command -v "$program" >/dev/null || {
      echo "$0: $program is missing: apt-get install slurm-wlm munge" >&2; exit 1; }
  done
  mkdir -p "$dir"/{state,spool,munge}
  chmod 0700 "$dir" "$dir/munge"
  # munged checks that no one else may write where its key and socket lie.
  if [ ! -f "$dir/munge/munge.key" ]; then
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$dir/munge/munge.key"
  fi
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed"

  cat > "$dir/slurm.conf" <<CONF
ClusterName=jobdtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName=n1 NodeAddr=127.0.0.1 Port=$((port + 1)) CPUs=2 State=UNKNOWN
NodeName=n2 NodeAddr=127.0.0.1 Port=$((port + 2)) CPUs=2 State=UNKNOWN
PartitionName=jobd Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N n1
  slurmd -f "$SLURM_CONF" -N n2
  for _ in $(seq 100); do
    if [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle')" -eq 2 ]; then
      echo "export SLURM_CONF=$SLURM_CONF"
      return 0
    fi
    sleep 0.2
  done
  echo "$0: the nodes did not come up within 20 s; sinfo says:" >&2
  sinfo -N >&2 || true
  tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd-n*.log >&2 || true
  down
  exit 1
}

case $action in
  up) up ;;
  down) down ;;
  *) usage ;;
esac
