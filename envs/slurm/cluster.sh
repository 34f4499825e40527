#!/usr/bin/env bash
# A single-node Slurm cluster on 127.0.0.1, for testing caffepipe's Slurm profile (tests/integration/test_slurm.py).
#
#   envs/slurm/cluster.sh up       start what is not running (munged, MariaDB, slurmdbd, slurmctld, slurmd)
#   envs/slurm/cluster.sh down     stop every daemon this script started, by the PID in its pid file
#   envs/slurm/cluster.sh status   say which daemons run; exit 0 only when all of them do
#
# Needs root and Debian's slurmctld slurmd slurm-client slurmdbd munge mariadb-server (envs/apt-packages.txt).
# Nothing here uses systemd: every daemon is started by this script and stopped through its pid file. Both
# commands are idempotent (a second `up` finds one cluster running and starts nothing; `down` when down is fine)
# and hold a lock, so two test sessions never start two clusters.
#
# Why it looks like this (more in the Cluster section of ../shared/FACTS.md):
# - Everything lives in one state folder ($CAFFEPIPE_SLURM_STATE, default /run/caffepipe-slurm): the generated
#   configs, its own munge key, the MariaDB data, the Slurm state, pid files and logs.
# - Except /etc/slurm/slurm.conf: Snakemake's Slurm executor removes every SLURM_* variable, SLURM_CONF
#   included, before the `srun` inside a job, so Slurm must find its config at the compiled-in path. The file
#   we write there starts with MARKER; `up` refuses to replace a slurm.conf without it (a real cluster's), and
#   `down` removes it only when it is ours.
# - munged refuses to run as root, so it runs as the munge user. Slurm runs as root (SlurmUser=root): this is
#   a throw-away cluster for the machine's own root, nothing else submits to it.
# - sacct is how the executor plugin polls job states, and it needs slurmdbd, which needs a database: a
#   MariaDB of our own on 127.0.0.1, in the state folder, on a port of its own (never the system's 3306).
# - The daemons bind to 127.0.0.1 (CommunicationParameters=NoCtldInAddrAny,NoInAddrAny; MariaDB's
#   --bind-address), except slurmdbd: Slurm 22.05 has no setting for its listening address, so it listens on
#   every interface, and answers only requests signed with this cluster's own munge key. The node is named
#   localhost (slurmd -N), since the machine's host name can be anything.
# - DefMemPerCPU: without it a job that asks no memory gets the whole node, and jobs run one at a time.
set -euo pipefail

state=${CAFFEPIPE_SLURM_STATE:-/run/caffepipe-slurm}
# Where Slurm's commands look for their config (tests point it elsewhere to check the refusal below).
slurm_conf=${CAFFEPIPE_SLURM_CONF_PATH:-/etc/slurm/slurm.conf}
readonly MARKER="# caffepipe test cluster: written by envs/slurm/cluster.sh; removed by its 'down'"
readonly CLUSTER_NAME=caffepipe
readonly SLURMCTLD_PORT=${CAFFEPIPE_SLURMCTLD_PORT:-6817}
readonly SLURMD_PORT=${CAFFEPIPE_SLURMD_PORT:-6818}
readonly SLURMDBD_PORT=${CAFFEPIPE_SLURMDBD_PORT:-6819}
readonly MUNGE_SOCKET=/run/munge/munge.socket.2
readonly MARIADB_PORT=${CAFFEPIPE_SLURM_MARIADB_PORT:-6820}
# The order they start in; `down` stops them in reverse.
readonly DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

say() { echo "[slurm] $*"; }
die() { echo "[slurm] error: $*" >&2; exit 1; }

# --- pid files: a daemon "runs" when its pid file names a live process of that program ------------------------
pid_file() { echo "$state/run/$1.pid"; }

running_pid() {   # prints the daemon's pid if it runs; a stale pid file (reboot, reused pid) counts as not running
  local file pid
  file=$(pid_file "$1")
  [ -s "$file" ] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
  echo "$pid"
}

wait_until() {    # wait_until SECONDS WHAT COMMAND...: poll COMMAND every 0.1 s
  local seconds=$1 what=$2; shift 2
  local tries=$((seconds * 10))
  until "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || die "$what did not come up within ${seconds}s; see $state/log/"
    sleep 0.1
  done
}

listens() {   # listens NAME PORT: the daemon runs and something listens on its port
  running_pid "$1" >/dev/null && ss -Hltn "sport = :$2" | grep -q .
}

# --- configuration ------------------------------------------------------------------------------------------------
check_slurm_conf_is_ours() {
  if [ -e "$slurm_conf" ] && ! head -n1 "$slurm_conf" | grep -qxF "$MARKER"; then
    die "$slurm_conf exists and was not written by this script (a real cluster's?); refusing to replace it. Move it away to use the test cluster."
  fi
}

cpu_count() {   # the machine's CPUs; nproc alone obeys OMP_NUM_THREADS, which a caller may have set to 1
  env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc
}

node_memory_mb() {   # what slurmd may offer: 90% of the machine's memory (slurmd refuses a node claiming more)
  awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo
}

write_configs() {
  local cpus memory
  cpus=$(cpu_count)
  memory=$(node_memory_mb)
  mkdir -p "$state"/{run,log,slurmctld,slurmd,munge}
  chmod 755 "$state"
  # The copy in the state folder is for slurmdbd, which looks for slurmdbd.conf beside $SLURM_CONF.
  write_slurm_conf "$cpus" "$memory" >"$state/slurm.conf"
  mkdir -p "$(dirname "$slurm_conf")"
  check_slurm_conf_is_ours
  install -m 644 "$state/slurm.conf" "$slurm_conf.caffepipe.tmp"
  mv "$slurm_conf.caffepipe.tmp" "$slurm_conf"
  [ -s "$state/mariadb.password" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$state/mariadb.password")
  (umask 077; write_slurmdbd_conf >"$state/slurmdbd.conf")
}

write_slurm_conf() {
  cat <<EOF
$MARKER
# state, pid files and logs: $state
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$SLURMCTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$state/slurmctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$(pid_file slurmctld)
SlurmdPidFile=$(pid_file slurmd)
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
MpiDefault=none
ReturnToService=2
# A cancelled job's processes get SIGTERM, then SIGKILL this many seconds later (the default is 30).
KillWait=10
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$SLURMDBD_PORT
AccountingStoreFlags=job_comment
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$1 RealMemory=$2 State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

write_slurmdbd_conf() {
  cat <<EOF
# caffepipe test cluster: written by envs/slurm/cluster.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$SLURMDBD_PORT
SlurmUser=root
PidFile=$(pid_file slurmdbd)
LogFile=$state/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MARIADB_PORT
StorageUser=slurm
StoragePass=$(cat "$state/mariadb.password")
StorageLoc=slurm_acct_db
EOF
}

# --- starting each daemon -----------------------------------------------------------------------------------------
# A daemon keeps no stdin/stdout/stderr of ours: a caller that reads our output to the end (a test) would
# otherwise wait for the daemon to exit. What it prints before it logs to its own file goes to log/stdio.log.
detached() { "$@" </dev/null >>"$state/log/stdio.log" 2>&1; }

start_munged() {
  # Its own key, in a folder only munged may write to (munged checks). The socket is at munge's compiled-in
  # path, which is where Slurm's connections to slurmdbd look for it whatever AuthInfo says.
  chown munge: "$state/munge"
  chmod 700 "$state/munge"
  mkdir -p "$(dirname "$MUNGE_SOCKET")"
  chown munge: "$(dirname "$MUNGE_SOCKET")"
  if [ ! -s "$state/munge/munge.key" ]; then
    (umask 077; head -c 1024 /dev/urandom >"$state/munge/munge.key")
    chown munge: "$state/munge/munge.key"
  fi
  touch "$(pid_file munged)" "$state/log/munged.log"
  chown munge: "$(pid_file munged)" "$state/log/munged.log"
  detached runuser -u munge -- /usr/sbin/munged --key-file="$state/munge/munge.key" --socket="$MUNGE_SOCKET" \
    --pid-file="$(pid_file munged)" --log-file="$state/log/munged.log" --seed-file="$state/munge/munge.seed"
  wait_until 10 munged test -S "$MUNGE_SOCKET"
}

start_mariadbd() {
  local data=$state/mariadb
  if [ ! -d "$data/mysql" ]; then
    mkdir -p "$data"
    chown mysql: "$data"
    mariadb-install-db --no-defaults --datadir="$data" --user=mysql --skip-test-db >"$state/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed; see $state/log/mariadb-install.log"
  fi
  # The account slurmdbd uses, made at every start (idempotent), so a new password file takes effect too.
  local password
  password=$(cat "$state/mariadb.password")
  cat >"$state/mariadb-init.sql" <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF
  chown mysql: "$state/mariadb-init.sql"
  chmod 600 "$state/mariadb-init.sql"
  touch "$(pid_file mariadbd)" "$state/log/mariadb.log"
  chown mysql: "$(pid_file mariadbd)" "$state/log/mariadb.log"
  # mariadbd does not daemonize itself; setsid --fork runs it in a session of its own and returns.
  detached setsid --fork /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$data" --bind-address=127.0.0.1 \
    --port="$MARIADB_PORT" --socket="$data/mariadb.sock" --pid-file="$(pid_file mariadbd)" \
    --init-file="$state/mariadb-init.sql" --innodb-buffer-pool-size=64M --skip-name-resolve \
    --log-error="$state/log/mariadb.log"
  wait_until 30 "MariaDB (port $MARIADB_PORT)" listens mariadbd "$MARIADB_PORT"
}

start_slurmdbd() {
  SLURM_CONF=$state/slurm.conf detached /usr/sbin/slurmdbd   # it reads the slurmdbd.conf beside $SLURM_CONF
  wait_until 30 "slurmdbd (port $SLURMDBD_PORT)" listens slurmdbd "$SLURMDBD_PORT"
}

start_slurmctld() {
  detached /usr/sbin/slurmctld -c -f "$slurm_conf"         # -c: no saved jobs from an earlier cluster
  wait_until 30 "slurmctld (port $SLURMCTLD_PORT)" listens slurmctld "$SLURMCTLD_PORT"
}

start_slurmd() {
  detached /usr/sbin/slurmd -N localhost -f "$slurm_conf"
  wait_until 30 "the node 'localhost'" node_is_ready
}

node_is_ready() {   # slurmd registered and the node takes jobs
  sinfo -h -N -n localhost -o '%T' | grep -Eq '^(idle|mixed|allocated)'
}

# --- stopping ------------------------------------------------------------------------------------------------
stop_daemon() {
  local name=$1 pid waited=0
  pid=$(running_pid "$name") || { rm -f "$(pid_file "$name")"; return 0; }
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$waited" -ge 100 ]; then
      say "$name ($pid) did not stop within 10 s of SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$(pid_file "$name")"
  say "stopped $name ($pid)"
}

cancel_all_jobs() {   # jobs left running would outlive slurmd (their slurmstepd runs on)
  running_pid slurmctld >/dev/null || return 0
  scancel --full --quiet --user=root 2>/dev/null || true
}

# --- commands --------------------------------------------------------------------------------------------------
up() {
  [ "$(id -u)" -eq 0 ] || die "needs root (it starts munged, MariaDB and Slurm's daemons and writes $slurm_conf)"
  local program
  for program in /usr/sbin/munged /usr/sbin/mariadbd /usr/sbin/slurmdbd /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch; do
    [ -x "$program" ] || die "$program is missing; install the packages in envs/apt-packages.txt (envs/setup.sh does)"
  done
  check_slurm_conf_is_ours
  write_configs
  local started=0 name
  for name in "${DAEMONS[@]}"; do
    if running_pid "$name" >/dev/null; then continue; fi
    "start_$name" 9>&-   # the daemon must not inherit the lock, or it would hold it for as long as it runs
    say "started $name ($(running_pid "$name" || echo '?'))"
    started=$((started + 1))
  done
  [ "$started" -gt 0 ] || say "already up"
  wait_until 30 "the node 'localhost'" node_is_ready
  say "up: cluster '$CLUSTER_NAME', node localhost with $(cpu_count) CPUs and $(node_memory_mb) MB; state in $state"
}

down() {
  cancel_all_jobs
  local index
  for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do
    stop_daemon "${DAEMONS[index]}"
  done
  if [ -e "$slurm_conf" ] && head -n1 "$slurm_conf" | grep -qxF "$MARKER"; then
    rm -f "$slurm_conf"
  fi
  say "down"
}

status() {
  local name pid missing=0
  for name in "${DAEMONS[@]}"; do
    if pid=$(running_pid "$name"); then say "$name: running ($pid)"; else say "$name: not running"; missing=1; fi
  done
  [ "$missing" -eq 0 ] && sinfo -N -n localhost
  return "$missing"
}

main() {
  case "${1:-}" in
    up | down | status) ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
  esac
  mkdir -p "$state"
  exec 9>"$state/.lock"
  flock 9              # one up or down at a time
  "$1"
}

main "$@"
