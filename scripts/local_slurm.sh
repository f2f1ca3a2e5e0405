#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying cluster sweeps (and for `make test-slurm`).
#
#   scripts/local_slurm.sh start [DIR]   install slurm-wlm, munge, slurmdbd and mariadb-server when missing
#                                        (root and apt-get only), write a configuration for this host under DIR
#                                        and start munged, mariadbd, slurmdbd, slurmctld and slurmd; returns when
#                                        `sinfo` shows the node idle. Starting a running cluster does nothing.
#   scripts/local_slurm.sh stop [DIR]    cancel the cluster's jobs and stop exactly the daemons `start` started
#                                        (by the pids it recorded under DIR/pids)
#   scripts/local_slurm.sh status [DIR]  the daemons, sinfo and squeue
#   scripts/local_slurm.sh env [DIR]     the line to eval so that sbatch, squeue, sacct and svae-bench use it:
#                                        eval "$(scripts/local_slurm.sh env)"
#
# DIR (default: $LOCAL_SLURM_DIR, else /tmp/svae-bench-slurm) holds everything: configuration, state, logs,
# the munge key and socket and the accounting database. Besides installing the packages, nothing is written
# to /etc and no system service is touched. Ports: LOCAL_SLURM_PORT (default 16817) for slurmctld, +1 slurmd,
# +2 slurmdbd, +3 mariadbd.
# LOCAL_SLURM_ACCOUNTING=0 leaves out slurmdbd and mariadb (then sacct does not work, and a submitit
# submitter never returns after a scancel: it learns the state of a job that left no result from sacct).
#
# Exit status: 0 done; 1 a daemon failed (the message names its log, whose tail follows); 2 bad usage;
# 3 no cluster can run here: the packages are missing and cannot be installed, or not root (the
# message says why; tests/test_slurm.py skips on this status only).
set -euo pipefail

ME=local_slurm
CMD=${1:-}
DIR=${2:-${LOCAL_SLURM_DIR:-/tmp/svae-bench-slurm}}
PORT=${LOCAL_SLURM_PORT:-16817}
ACCOUNTING=${LOCAL_SLURM_ACCOUNTING:-1}
PACKAGES=(slurm-wlm munge)
[ "$ACCOUNTING" = 1 ] && PACKAGES+=(slurmdbd mariadb-server)
CLUSTER=svaebench
PARTITION=local

die() {  # die STATUS MESSAGE [LOG...]: one line on stderr, then the tail of each LOG that is not empty
    local status=$1 log
    echo "$ME: error: $2" >&2
    shift 2
    for log in "$@"; do
        if [ -s "$log" ]; then
            echo "--- last lines of $log:" >&2
            tail -n 25 "$log" >&2
        fi
    done
    exit "$status"
}

usage() {
    echo "usage: scripts/local_slurm.sh start|stop|status|env [DIR]" >&2
    exit 2
}

case "$CMD" in start | stop | status | env) ;; *) usage ;; esac
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
case "$PORT" in '' | *[!0-9]*) die 2 "LOCAL_SLURM_PORT=$PORT is not a port number" ;; esac

ETC=$DIR/etc
LOG=$DIR/log
PIDS=$DIR/pids
MUNGE=$DIR/munge
DB=$DIR/db
SOCKET=$MUNGE/munge.socket.2
NODE=$(hostname -s)
export SLURM_CONF=$ETC/slurm.conf
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)  # start order; stop goes backwards
[ "$ACCOUNTING" = 1 ] || DAEMONS=(munged slurmctld slurmd)

# --- recorded pids -------------------------------------------------------------------------------
recorded_pid() {  # the pid `start` recorded for daemon $1, if that process still runs as $1
    local pid
    [ -f "$PIDS/$1" ] || return 1
    pid=$(cat "$PIDS/$1")
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ] || return 1
    echo "$pid"
}

record_pid() {  # record_pid NAME PIDFILE: the pid a daemon wrote once it runs (waits up to 20 s)
    local i pid
    for i in $(seq 1 100); do
        if [ -s "$2" ]; then
            pid=$(tr -dc 0-9 <"$2")
            if [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$1" ]; then
                echo "$pid" >"$PIDS/$1"
                return 0
            fi
        fi
        [ "$i" = 100 ] || sleep 0.2
    done
    return 1
}

stop_pid() {  # stop_pid NAME: TERM the recorded process, KILL it after 20 s
    local pid i
    if pid=$(recorded_pid "$1"); then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 100); do
            [ -d "/proc/$pid" ] || break
            [ "$i" = 100 ] && kill -KILL "$pid" 2>/dev/null
            sleep 0.2
        done
        echo "$ME: stopped $1 (pid $pid)"
    fi
    rm -f "$PIDS/$1"
}

running_daemons() {  # how many of the daemons have a live recorded pid
    local n=0 d
    for d in "${DAEMONS[@]}"; do
        if recorded_pid "$d" >/dev/null; then n=$((n + 1)); fi
    done
    echo "$n"
}

node_state() {
    timeout 10 sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1
}

# --- stop --------------------------------------------------------------------------------------
stop_cluster() {
    local i
    if recorded_pid slurmctld >/dev/null; then
        # the cluster's jobs: every job of this private cluster belongs to it
        timeout 20 squeue -h -o %A 2>/dev/null | sort -u | xargs -r timeout 20 scancel 2>/dev/null || true
        for i in $(seq 1 30); do
            [ -z "$(timeout 10 squeue -h -t R,CG -o %A 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do stop_pid "${DAEMONS[i]}"; done
    stop_pid mariadbd  # also when LOCAL_SLURM_ACCOUNTING changed between start and stop
    stop_pid slurmdbd
}

# --- install -----------------------------------------------------------------------------------
missing_commands() {
    local c out=()
    for c in munged slurmctld slurmd sbatch sinfo squeue scancel sacct; do command -v "$c" >/dev/null || out+=("$c"); done
    if [ "$ACCOUNTING" = 1 ]; then
        for c in slurmdbd mariadbd mariadb-install-db mariadb; do command -v "$c" >/dev/null || out+=("$c"); done
    fi
    echo "${out[*]}"
}

install_packages() {
    local missing
    missing=$(missing_commands)
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || die 3 "${PACKAGES[*]} not installed (missing: $missing) and not root: cannot install them"
    command -v apt-get >/dev/null || die 3 "${PACKAGES[*]} not installed (missing: $missing) and no apt-get here"
    mkdir -p "$LOG"
    echo "$ME: installing ${PACKAGES[*]} (log: $LOG/apt.log)"
    # policy-rc.d: the packages' own services must not start (this script runs its own daemons)
    if ! {
        timeout 600 apt-get -q -o DPkg::Lock::Timeout=300 update &&
            DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q --no-install-recommends \
                -o DPkg::Lock::Timeout=300 "${PACKAGES[@]}"
    } >"$LOG/apt.log" 2>&1; then
        die 3 "apt-get install ${PACKAGES[*]} failed: $(grep -E '^(E|W):' "$LOG/apt.log" | head -n 1 || true) (log: $LOG/apt.log)"
    fi
    missing=$(missing_commands)
    [ -z "$missing" ] || die 3 "still missing after installing ${PACKAGES[*]}: $missing"
}

# --- configuration -----------------------------------------------------------------------------
port_free() {  # nothing listens on 127.0.0.1:$1
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

write_config() {
    local cpus mem_mb
    mkdir -p "$ETC" "$LOG" "$PIDS" "$DIR/spool/ctld" "$DIR/spool/d" "$DIR/run"
    chmod 755 "$DIR"
    cpus=$(nproc)
    # memory slurmd may hand out: 90 % of what it detects (more than it detects would drain the node)
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    local accounting="AccountingStorageType=accounting_storage/none"
    if [ "$ACCOUNTING" = 1 ]; then
        accounting="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((PORT + 2))
# with auth/munge, the munge socket of the connections to slurmdbd (AuthInfo's is not used for them)
AccountingStoragePass=$SOCKET"
    fi
    cat >"$ETC/slurm.conf" <<EOF
# written by scripts/local_slurm.sh: one node ($NODE), one partition ($PARTITION)
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SOCKET,cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$accounting
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# try pending jobs every 5 s (default 60 s), so a requeued job starts soon after its credential expired
SchedulerParameters=sched_interval=5,bf_interval=5
MailProg=/bin/true
ReturnToService=2
# seconds between SIGTERM and SIGKILL at a time limit or scancel
KillWait=5
# jobs are not requeueable unless they ask (sbatch --requeue), as on many sites
JobRequeue=0
InactiveLimit=0
MinJobAge=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if [ "$ACCOUNTING" = 1 ]; then
        cat >"$ETC/slurmdbd.conf" <<EOF
# written by scripts/local_slurm.sh
AuthType=auth/munge
AuthInfo=socket=$SOCKET
DbdHost=localhost
DbdPort=$((PORT + 2))
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$((PORT + 3))
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
        chmod 600 "$ETC/slurmdbd.conf"
    fi
}

# --- daemons -----------------------------------------------------------------------------------
start_munged() {
    mkdir -p "$MUNGE"
    chown munge:munge "$MUNGE"
    chmod 755 "$MUNGE"  # clients reach the socket; the key file itself is 0600
    if [ ! -s "$MUNGE/munge.key" ]; then
        dd if=/dev/urandom of="$MUNGE/munge.key" bs=1024 count=1 status=none
        chown munge:munge "$MUNGE/munge.key"
        chmod 600 "$MUNGE/munge.key"
    fi
    rm -f "$MUNGE/munged.pid"
    # --force: DIR may lie under /tmp, whose sticky world-writable mode munged otherwise refuses
    # its log lies in its own directory: munged refuses a log file that user munge does not own
    runuser -u munge -- munged --force --socket="$SOCKET" --key-file="$MUNGE/munge.key" \
        --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" --seed-file="$MUNGE/munged.seed" \
        >"$LOG/munged.out" 2>&1 ||
        die 1 "munged did not start (log: $MUNGE/munged.log)" "$LOG/munged.out" "$MUNGE/munged.log"
    record_pid munged "$MUNGE/munged.pid" ||
        die 1 "munged did not start (log: $MUNGE/munged.log)" "$LOG/munged.out" "$MUNGE/munged.log"
}

start_mariadbd() {
    local i sql="$DB/mysqld.sock"
    mkdir -p "$DB"
    chown mysql:mysql "$DB"
    touch "$LOG/mariadbd.log"
    chown mysql:mysql "$LOG/mariadbd.log"
    if [ ! -d "$DB/data/mysql" ]; then
        rm -rf "$DB/data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB/data" --skip-test-db \
            >"$LOG/mariadb-install.log" 2>&1 ||
            die 1 "mariadb-install-db failed (log: $LOG/mariadb-install.log)" "$LOG/mariadb-install.log"
    fi
    rm -f "$DB/mariadbd.pid"
    setsid mariadbd --no-defaults --user=mysql --datadir="$DB/data" --socket="$sql" \
        --port=$((PORT + 3)) --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$DB/mariadbd.pid" \
        --log-error="$LOG/mariadbd.log" --innodb-buffer-pool-size=32M --skip-log-bin </dev/null >/dev/null 2>&1 &
    record_pid mariadbd "$DB/mariadbd.pid" || die 1 "mariadbd did not start (log: $LOG/mariadbd.log)" "$LOG/mariadbd.log"
    for i in $(seq 1 100); do
        [ -S "$sql" ] && mariadb --no-defaults --socket="$sql" -u root -e "SELECT 1" >/dev/null 2>&1 && break
        [ "$i" = 100 ] && die 1 "mariadbd does not answer on $sql (log: $LOG/mariadbd.log)" "$LOG/mariadbd.log"
        sleep 0.2
    done
    mariadb --no-defaults --socket="$sql" -u root -e \
        "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" \
        >>"$LOG/mariadbd.log" 2>&1 || die 1 "could not create the accounting user (log: $LOG/mariadbd.log)" "$LOG/mariadbd.log"
}

start_slurmdbd() {
    local i
    rm -f "$DIR/run/slurmdbd.pid"
    slurmdbd >>"$LOG/slurmdbd.log" 2>&1 || die 1 "slurmdbd did not start (log: $LOG/slurmdbd.log)" "$LOG/slurmdbd.log"
    record_pid slurmdbd "$DIR/run/slurmdbd.pid" ||
        die 1 "slurmdbd did not start (log: $LOG/slurmdbd.log)" "$LOG/slurmdbd.log"
    for i in $(seq 1 100); do
        timeout 10 sacctmgr -n -P list cluster >/dev/null 2>&1 && break
        [ "$i" = 100 ] && die 1 "slurmdbd does not answer (log: $LOG/slurmdbd.log)" "$LOG/slurmdbd.log"
        sleep 0.2
    done
    if ! timeout 10 sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx "$CLUSTER"; then
        timeout 20 sacctmgr -i add cluster "$CLUSTER" >>"$LOG/slurmdbd.log" 2>&1 ||
            die 1 "sacctmgr add cluster $CLUSTER failed (log: $LOG/slurmdbd.log)" "$LOG/slurmdbd.log"
    fi
}

start_slurmctld() {
    rm -f "$DIR/run/slurmctld.pid"
    slurmctld -f "$SLURM_CONF" >>"$LOG/slurmctld.log" 2>&1 ||
        die 1 "slurmctld did not start (log: $LOG/slurmctld.log)" "$LOG/slurmctld.log"
    record_pid slurmctld "$DIR/run/slurmctld.pid" ||
        die 1 "slurmctld did not start (log: $LOG/slurmctld.log)" "$LOG/slurmctld.log"
}

start_slurmd() {
    rm -f "$DIR/run/slurmd.pid"
    slurmd -f "$SLURM_CONF" -N "$NODE" >>"$LOG/slurmd.log" 2>&1 ||
        die 1 "slurmd did not start (log: $LOG/slurmd.log)" "$LOG/slurmd.log"
    record_pid slurmd "$DIR/run/slurmd.pid" || die 1 "slurmd did not start (log: $LOG/slurmd.log)" "$LOG/slurmd.log"
}

wait_idle() {
    local i state
    for i in $(seq 1 120); do
        state=$(node_state || true)
        case "$state" in idle | mixed | allocated) return 0 ;; esac
        if [ "$i" = 20 ] || [ "$i" = 60 ]; then  # still down after a restart: tell slurmctld it is back
            timeout 10 scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
        fi
        sleep 0.5
    done
    die 1 "node $NODE is '${state:-unknown}', not idle, after 60 s (log: $LOG/slurmd.log, $LOG/slurmctld.log)" \
        "$LOG/slurmctld.log"
}

on_exit() {
    local rc=$?
    if [ "$rc" != 0 ]; then stop_cluster >/dev/null 2>&1; fi
}

start_cluster() {
    local n d state port
    n=$(running_daemons)
    if [ "$n" = "${#DAEMONS[@]}" ]; then
        state=$(node_state || true)
        case "$state" in
        idle | mixed | allocated)
            echo "$ME: already running in $DIR (node $NODE $state)"
            return 0
            ;;
        esac
    fi
    [ "$n" = 0 ] || stop_cluster >/dev/null  # a partial cluster: start over
    install_packages
    # munged runs as user munge, mariadbd as mysql, the SLURM daemons as root
    [ "$(id -u)" = 0 ] || die 3 "not root: cannot start munged, mariadbd and the SLURM daemons (run it with sudo)"
    for d in 0 1 2 3; do
        port=$((PORT + d))
        [ "$ACCOUNTING" = 1 ] || [ "$d" -lt 2 ] || continue
        port_free "$port" || die 1 "port $port is in use (another SLURM? choose others with LOCAL_SLURM_PORT=N)"
    done
    write_config
    # whatever fails from here on, or interrupts the start: stop what was started (die exits through this)
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    for d in "${DAEMONS[@]}"; do "start_$d"; done
    wait_idle
    trap - EXIT INT TERM HUP
    echo "$ME: running in $DIR: node $NODE idle, partition $PARTITION, $(nproc) CPUs" \
        "(stop: scripts/local_slurm.sh stop $DIR; clients: export SLURM_CONF=$SLURM_CONF)"
}

status_cluster() {
    local d pid
    for d in "${DAEMONS[@]}"; do
        if pid=$(recorded_pid "$d"); then echo "$d: running (pid $pid)"; else echo "$d: not running"; fi
    done
    if recorded_pid slurmctld >/dev/null; then
        timeout 10 sinfo -N -o "%N %P %T %C" || true
        timeout 10 squeue -o "%.18i %.9P %.20j %.8T %.10M %R" || true
    fi
}

case "$CMD" in
start) start_cluster ;;
stop) stop_cluster ;;
status) status_cluster ;;
env) echo "export SLURM_CONF=$SLURM_CONF" ;;
esac
