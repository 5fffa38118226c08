#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for the launcher tests and for trying `--launcher submitit`.
#
#   sudo scripts/slurm_local.sh start     # install (Debian: slurmctld slurmd slurm-client munge) + start
#   export SLURM_CONF=/tmp/vega-slurm/slurm.conf   # printed by `start`; sbatch/squeue/scontrol need it
#   scripts/slurm_local.sh status         # daemons + `sinfo`
#   scripts/slurm_local.sh stop           # kills the daemons this script started (by pid)
#
# Everything lives in $VEGA_SLURM_DIR (default /tmp/vega-slurm): slurm.conf, spool/state dirs, logs, pid files.
# /etc/slurm is never touched, so a machine that already has a real SLURM configuration keeps it.
# `start` is idempotent: when the daemons from a previous `start` still answer, it only waits for the node.
# Needs root (package install, munged, slurmd); exits non-zero with the reason when it cannot start.
set -euo pipefail

DIR=${VEGA_SLURM_DIR:-/tmp/vega-slurm}
CONF=$DIR/slurm.conf
PARTITION=${VEGA_SLURM_PARTITION:-debug}
export SLURM_CONF=$CONF

log() { echo "slurm_local: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    local missing=()
    for cmd in slurmctld:slurmctld slurmd:slurmd sinfo:slurm-client munged:munge; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]} and not root: run 'sudo $0 start'"
    command -v apt-get >/dev/null || die "missing ${missing[*]}; no apt-get here, install SLURM and munge by hand"
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # Package postinst scripts try to start the services; in a container without an init system that fails
    # harmlessly (policy-rc.d 101 forbids it outright), and we start the daemons ourselves below.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && created_policy=1; fi
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || { [ $created_policy = 1 ] && rm -f $policy; die "apt-get install of slurm/munge failed"; }
    [ $created_policy = 1 ] && rm -f $policy
    return 0
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then mungekey --create --keyfile=/etc/munge/munge.key --force
        else dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; fi
    fi
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
    # A munged that answers (ours or the system's) is good enough.
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    # munged drops to the munge user: its pid file goes into a folder that user owns.
    mkdir -p /run/munge /var/lib/munge /var/log/munge "$DIR/munge"
    chown munge:munge /run/munge /var/lib/munge /var/log/munge "$DIR/munge" 2>/dev/null || true
    chmod 755 /run/munge
    log "starting munged"
    if id munge >/dev/null 2>&1; then
        runuser -u munge -- munged --pid-file="$DIR/munge/munged.pid" 2>>"$DIR/munged.err" \
            || munged --force --pid-file="$DIR/munge/munged.pid" 2>>"$DIR/munged.err"
    else
        munged --force --pid-file="$DIR/munge/munged.pid" 2>>"$DIR/munged.err"
    fi
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged does not answer (see $DIR/munged.err)"
}

write_conf() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc --all)
    mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)  # leave 10% to the OS
    mkdir -p "$DIR/ctld" "$DIR/d" "$DIR/log"
    cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm_local.sh: a one-node test cluster (controller and compute node on $host).
ClusterName=vega-local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Linux proctrack + no cgroups: nothing here needs systemd or a cgroup mount (containers, CI).
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
# Preempted/timed-out jobs get the job's --signal (submitit's USR1/USR2) before being killed; submitit
# relies on this to checkpoint and requeue.
SlurmctldParameters=preempt_send_user_signal
JobRequeue=1
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/d
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${VEGA_SLURMCTLD_PORT:-6817}
SlurmdPort=${VEGA_SLURMD_PORT:-6818}
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
}

wait_idle() {
    local host state
    host=$(hostname -s)
    for _ in $(seq 120); do
        state=$(sinfo -h -n "$host" -o '%t' 2>/dev/null | head -1 || true)
        case "$state" in
            idle|mix|alloc) return 0 ;;
            down*|drain*|fail*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node $host never became idle (state '${state:-none}'); see $DIR/log/"
}

start() {
    mkdir -p "$DIR"
    if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" && sinfo -h >/dev/null 2>&1; then
        wait_idle
        log "already running"
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    stop_daemons quiet
    install_packages
    [ "$(id -u)" -eq 0 ] || die "slurmd must run as root: run 'sudo $0 start'"
    start_munge
    write_conf
    log "starting slurmctld and slurmd (config $CONF)"
    # -i: ignore state left by an earlier cluster in $DIR (stale jobs would otherwise come back).
    slurmctld -i -f "$CONF" || die "slurmctld failed to start (see $DIR/log/slurmctld.log)"
    slurmd -f "$CONF" || die "slurmd failed to start (see $DIR/log/slurmd.log)"
    wait_idle
    log "node idle; partition '$PARTITION'"
    echo "export SLURM_CONF=$CONF"
}

stop_daemons() {
    local name pidfile pid
    for name in slurmd slurmctld munge/munged; do
        pidfile=$DIR/$name.pid
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            [ "${1:-}" = quiet ] || log "stopping $name (pid $pid)"
            kill "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        fi
        rm -f "$pidfile"
    done
}

status() {
    local name rc=0
    for name in munge/munged slurmctld slurmd; do
        if pid_alive "$DIR/$name.pid"; then echo "${name#munge/}: running (pid $(cat "$DIR/$name.pid"))"
        else echo "${name#munge/}: not started by this script"; [ $name = munge/munged ] || rc=1; fi
    done
    [ -f "$CONF" ] && echo "config: $CONF" && sinfo 2>&1 || rc=1
    return $rc
}

case "${1:-}" in
    start) start ;;
    stop) stop_daemons ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
