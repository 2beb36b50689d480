#!/usr/bin/env bash
# A single-node SLURM cluster with job accounting, for the tests marked `slurm`
# (tests/test_slurm.py). Debian or Ubuntu, as root, without systemd:
#
#   ci/slurm.sh start    install (apt-get) munge, slurmctld, slurmd, slurm-client, slurmdbd and
#                        mariadb-server where missing; write the configs; start the daemons and
#                        wait until the node is idle (about 1-2 minutes with the install)
#   ci/slurm.sh stop     cancel the cluster's jobs and stop the daemons this script started,
#                        by their process ids, nothing else
#   ci/slurm.sh status   the daemons this script started and the node's state
#
# Where the cluster cannot be started here (not root, no apt-get, the packages not available,
# another SLURM already configured or running), `start` says so in one line and exits 0: the
# slurm tests then skip themselves. A start that fails after that exits 1 (the logs are in
# the state folder) and leaves nothing running.
#
# Settings a container needs: proctrack/linuxproc and task/none (no cgroups), the node line
# from `slurmd -C`, MailProg=/bin/true; AuthInfo=cred_expire=10 lets a requeued job start
# again after ~20 s instead of ~2 min; accounting through slurmdbd (MariaDB) is what lets
# submitit see a job that was killed before it wrote its result (`sacct`).
set -Eeuo pipefail

STATE=${PINN_EXP_SLURM_DIR:-/tmp/pinn-exp-slurm}
CLUSTER=pinnexp
MARK="# written by pinn-exp ci/slurm.sh"
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
DB_PORT=3399
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

say() { echo "slurm: $*"; }
skip() { say "not started: $*; the tests marked slurm will skip"; exit 0; }

# ------------------------------------------------------------------ the daemons we started
# $STATE/pids: one "NAME PID" line per daemon this script started, in start order
started() { [[ -f $STATE/pids ]] && cat "$STATE/pids" || true; }

alive() {  # alive NAME PID: PID runs and is still the process we started (not a reused id)
  [[ -r /proc/$2/comm ]] && [[ $(cat "/proc/$2/comm") == "$1"* ]]
}

remember() { echo "$1 $2" >>"$STATE/pids"; }

stop() {
  [[ -f $STATE/pids ]] || { say "nothing to stop"; return 0; }
  if command -v squeue >/dev/null && sinfo -h >/dev/null 2>&1; then
    # the cluster's own jobs (tests that failed half-way): cancel them before slurmd goes
    mapfile -t jobs < <(squeue -h -o %i 2>/dev/null || true)
    if ((${#jobs[@]})); then
      scancel "${jobs[@]}" 2>/dev/null || true
      for _ in $(seq 20); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.5; done
    fi
  fi
  # in reverse start order: slurmd, slurmctld, slurmdbd, mariadbd, munged
  tac "$STATE/pids" | while read -r name pid; do
    if alive "$name" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 40); do alive "$name" "$pid" || break; sleep 0.25; done
      if alive "$name" "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
  done
  rm -f "$STATE/pids"
  say "stopped"
}

status() {
  started | while read -r name pid; do
    if alive "$name" "$pid"; then echo "$name $pid running"; else echo "$name $pid gone"; fi
  done
  sinfo -h -o "%N %T" 2>/dev/null || echo "sinfo: no answer"
}

# ------------------------------------------------------------------------------- start
launch() {  # launch NAME LOG COMMAND...: a daemon in the foreground of its own session
  local name=$1 log=$2
  shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  remember "$name" $!
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "failed: $what did not come up within ${seconds} s; logs in $STATE"
  tail -n 20 "$STATE"/*.log >&2 || true
  return 1
}

install() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  # no service may start during the install: this script starts what it needs itself
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
  fi
  local ok=1
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$STATE/apt.log" 2>&1 || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 || ok=
  [[ -n $own_policy ]] && rm -f "$policy"
  [[ -n $ok ]] || skip "apt-get install ${missing[*]} failed (log: $STATE/apt.log)"
}

write_configs() {
  local host node
  host=$(hostname -s)
  node=$(slurmd -C | head -n 1)
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d"
  cat >"$CONF" <<EOF
$MARK
ClusterName=$CLUSTER
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=10
CredType=cred/munge
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5
MessageTimeout=5
SlurmdTimeout=30
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$DBD_CONF" <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$STATE/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
EOF
  chmod 600 "$DBD_CONF"
}

start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    mungekey --create --force >/dev/null 2>&1 ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  launch munged "$STATE/munged.log" setpriv --reuid=munge --regid=munge --init-groups \
    /usr/sbin/munged --foreground
  wait_for munged 10 sh -c 'munge -n | unmunge'
}

start_mariadb() {
  local db=$STATE/mysql
  if [[ ! -d $db/mysql ]]; then
    mkdir -p "$db" && chown mysql:mysql "$db"
    mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket \
      >"$STATE/mariadb-install.log" 2>&1
  fi
  launch mariadbd "$STATE/mariadbd.log" /usr/sbin/mariadbd --no-defaults --user=mysql \
    --datadir="$db" --socket="$db/mysqld.sock" --pid-file="$db/mariadbd.pid" \
    --bind-address=127.0.0.1 --port=$DB_PORT --innodb-buffer-pool-size=32M
  wait_for mariadbd 30 mariadb --socket="$db/mysqld.sock" -e "select 1"
  mariadb --socket="$db/mysqld.sock" <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

node_idle() { [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; }

start() {
  [[ $(uname -s) == Linux ]] || skip "not Linux"
  ((EUID == 0)) || skip "needs root (it installs packages and starts daemons)"
  command -v apt-get >/dev/null || skip "apt-get is not available"
  if [[ -f $STATE/pids ]] && node_idle; then say "running already"; return 0; fi
  if [[ -f $CONF ]] && ! grep -qx "$MARK" "$CONF"; then
    skip "$CONF exists and is not this script's; leaving that SLURM alone"
  fi
  for daemon in slurmctld slurmd slurmdbd munged; do
    pgrep -x "$daemon" >/dev/null && skip "a $daemon runs already (not started by this script)"
  done
  mkdir -p "$STATE"
  rm -f "$STATE/pids"
  install
  write_configs
  # from here on a failure stops whatever was started
  trap 'say "start failed; stopping what was started"; stop; exit 1' ERR
  start_munge
  start_mariadb
  launch slurmdbd "$STATE/slurmdbd.out" /usr/sbin/slurmdbd -D
  wait_for slurmdbd 30 sacctmgr -n list cluster
  # -c: a clean state (no jobs of an earlier start)
  launch slurmctld "$STATE/slurmctld.out" /usr/sbin/slurmctld -D -c
  wait_for slurmctld 30 scontrol ping
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  launch slurmd "$STATE/slurmd.out" /usr/sbin/slurmd -D
  wait_for "the node (idle)" 60 node_idle
  wait_for "job accounting (sacct)" 30 sacct -n -X
  trap - ERR
  say "running: $(sinfo -h -o '%N %c CPUs %T'), accounting by slurmdbd; stop: $0 stop"
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
