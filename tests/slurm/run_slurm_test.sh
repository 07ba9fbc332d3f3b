#!/usr/bin/env bash
# The workflow on a real SLURM cluster: a one-node cluster on this machine, driven by
# Snakemake's SLURM executor plugin with tests/slurm/profile (profiles/slurm adapted to it).
#
# What it proves:
#   1. prepare, generate and score jobs go through sbatch (the scoring jobs grouped into one
#      submission whose CPU request is capped; each generation job asking for one CPU, though
#      it holds none locally), and summary.json equals a local run's;
#   2. scancel of a generation job mid-way, then a plain rerun, requests exactly the responses
#      that were missing: none that had already arrived is requested again.
#
# It needs root and Debian: it installs slurmctld, slurmd, slurm-client and munge with apt when
# missing, writes /etc/slurm/slurm.conf (the job-step plugin drops SLURM_CONF, so the file must
# be at the default path), starts munged, slurmctld and slurmd by hand (no systemd, no
# cgroups: proctrack/linuxproc and task/none; no accounting database: squeue is the status
# command and MinJobAge keeps finished jobs visible). On exit, whatever happened, it cancels its
# jobs, stops the daemons it started (by PID) and removes the slurm.conf it wrote, so no later
# snakemake call waits on a SLURM probe. The apt packages stay installed.
#
# The SLURM plugin goes into its own virtualenv (REWARDFLOW_SLURM_VENV, by default under /tmp)
# layered over the project's .venv, never into .venv itself.
#
# Usage: tests/slurm/run_slurm_test.sh      (from anywhere; takes about three minutes)
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROFILE="$REPO/tests/slurm/profile"
RUNTIME_DIR="${REWARDFLOW_SLURM_RUNTIME:-/tmp/rewardflow-slurm-test}"
REPO_TAG="$(printf '%s' "$REPO" | sha256sum | cut -c1-10)"
SLURM_VENV="${REWARDFLOW_SLURM_VENV:-/tmp/rewardflow-slurm-venv-$REPO_TAG}"
SLURM_CONF=/etc/slurm/slurm.conf
CONF_MARKER="# written by rewardflow tests/slurm/run_slurm_test.sh"
PARTITION=rftest
NODE="$(hostname -s)"
DEMO_ROWS="$(grep -c . "$REPO/examples/demo/arithmetic.jsonl")"
STARTED_AT=$SECONDS

passed=0
failed=0
started_pids=()   # daemons this script started, stopped in reverse order on exit
ctld_pid=""
wrote_conf=0
made_munge_key=0
background_pid=""

log() { printf '[slurm test %3ds] %s\n' "$((SECONDS - STARTED_AT))" "$*"; }
pass() { passed=$((passed + 1)); log "PASS: $*"; }
fail() { failed=$((failed + 1)); log "FAIL: $*" >&2; }
die() {
    failed=$((failed + 1))
    log "ERROR: $*" >&2
    exit 1
}
check() { # check "description" command...: a passing or failing assertion
    local description="$1"
    shift
    if "$@"; then pass "$description"; else fail "$description"; fi
}
show_tail() { # show_tail FILE: the end of a log, for a failure message
    [ -f "$1" ] && { echo "----- last lines of $1 -----" >&2; tail -n 40 "$1" >&2; echo "-----" >&2; }
    return 0
}
wait_until() { # wait_until SECONDS "description" command...: poll every 0.2 s
    local limit="$1" description="$2"
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "timed out after ${limit}s waiting for: $description" >&2
            return 1
        fi
        sleep 0.2
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$background_pid" ]; then
        # An interrupted snakemake cancels the SLURM jobs it submitted.
        stop_pid "$background_pid"
    fi
    if [ -n "$ctld_pid" ] && kill -0 "$ctld_pid" 2>/dev/null; then
        # Our private cluster runs only this script's jobs: cancel them all and let slurmd
        # reap their processes before it is stopped.
        scancel --partition="$PARTITION" >/dev/null 2>&1
        wait_until 30 "jobs to leave the node" no_active_jobs >/dev/null 2>&1
    fi
    local index
    for ((index = ${#started_pids[@]} - 1; index >= 0; index--)); do
        stop_pid "${started_pids[index]}"
    done
    if [ "$wrote_conf" = 1 ] && [ -f "$SLURM_CONF" ] && grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
        rm -f "$SLURM_CONF"
    fi
    if [ "$made_munge_key" = 1 ]; then
        rm -f /etc/munge/munge.key
    fi
    if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
        failed=1
        log "ERROR: interrupted (exit status $status)" >&2
    fi
    log "work directory (logs, results): $RUNTIME_DIR"
    echo "slurm-test: $passed passed, $failed failed"
    if [ "$failed" -gt 0 ]; then exit 1; fi
    exit 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_pid() { # stop_pid PID: TERM, wait up to 15 s, then KILL
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    return 0
}

no_active_jobs() {
    [ -z "$(squeue --noheader --states=PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED \
        --format=%i 2>/dev/null)" ]
}

# --- 1. Debian packages -----------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and writes $SLURM_CONF)"
command -v apt-get >/dev/null || die "needs Debian's apt-get"
packages=(slurmctld slurmd slurm-client munge)
missing_packages=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
        missing_packages+=("$package")
done
if [ "${#missing_packages[@]}" -gt 0 ]; then
    log "installing ${missing_packages[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >"$RUNTIME_DIR.apt.log" 2>&1 || { show_tail "$RUNTIME_DIR.apt.log"; die "apt-get update failed"; }
    # The plugins used here are all in slurm-wlm-basic-plugins, a dependency; the recommended
    # extras (HDF5, InfluxDB, IPMI, development files...) are not needed.
    apt-get install -y -qq --no-install-recommends "${packages[@]}" >>"$RUNTIME_DIR.apt.log" 2>&1 ||
        { show_tail "$RUNTIME_DIR.apt.log"; die "apt-get install ${packages[*]} failed"; }
else
    log "${packages[*]} already installed"
fi
for tool in slurmctld slurmd sbatch squeue sinfo scancel scontrol munged munge unmunge; do
    command -v "$tool" >/dev/null || die "$tool not found after installing ${packages[*]}"
done
if pidof systemd >/dev/null; then
    log "systemd is running; the daemons are still started by hand, with this script's config"
else
    log "no systemd: starting the daemons by hand"
fi

# --- 2. The project's venv, and a separate one for the SLURM plugin ----------------------------
# dev/setup-venv.sh creates or refreshes .venv (a no-op when up to date), as ./test.sh does.
# shellcheck source=/dev/null
source "$REPO/dev/setup-venv.sh" || die "could not set up $REPO/.venv"
set +e # setup-venv.sh turns on errexit; this script checks every status itself
MAIN_PY="$REPO/.venv/bin/python"
plugin_requirement="$("$MAIN_PY" - "$REPO/pyproject.toml" <<'EOF'
import sys, tomllib
extras = tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]
print(next(r for r in extras["slurm"] if r.startswith("snakemake-executor-plugin-slurm")))
EOF
)" || die "pyproject.toml has no [project.optional-dependencies] slurm extra naming the plugin"
if [ ! -x "$SLURM_VENV/bin/python" ]; then
    log "creating $SLURM_VENV"
    base_python="$("$MAIN_PY" -c 'import sys; print(sys._base_executable)')"
    "$base_python" -m venv "$SLURM_VENV" || die "could not create $SLURM_VENV"
fi
SLURM_PY="$SLURM_VENV/bin/python"
# Layer the project's .venv under it (rewardflow, snakemake and the rest, already installed):
# only the plugin and its job-step companion are installed here.
main_site="$("$MAIN_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
own_site="$("$SLURM_PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$main_site')" >"$own_site/_rewardflow_main_venv.pth"
"$SLURM_PY" -m pip install --quiet --disable-pip-version-check "$plugin_requirement" \
    >"$RUNTIME_DIR.pip.log" 2>&1 || { show_tail "$RUNTIME_DIR.pip.log"; die "pip install $plugin_requirement failed"; }
plugin_version="$("$SLURM_PY" -c 'import importlib.metadata as m; print(m.version("snakemake-executor-plugin-slurm"))')" ||
    die "the SLURM plugin is not importable from $SLURM_VENV"
"$SLURM_PY" -c 'import rewardflow, snakemake' || die "$SLURM_VENV does not see rewardflow from .venv"
log "plugin: snakemake-executor-plugin-slurm $plugin_version in $SLURM_VENV"
check "the SLURM plugin is not installed in the project's .venv" \
    bash -c "! '$MAIN_PY' -c 'import snakemake_executor_plugin_slurm' 2>/dev/null"

# --- 3. A one-node cluster ---------------------------------------------------------------------
# One run at a time: the lock is held by this shell only (its children get fd 9 closed).
exec 9>"$RUNTIME_DIR.lock"
flock --nonblock 9 || die "another run of this test holds $RUNTIME_DIR.lock"
for daemon in slurmd slurmctld munged; do
    # A run killed before its clean-up leaves its daemons, whose PIDs are in its pid files:
    # stop those. Another slurmctld or slurmd is not ours: stop. Another munged is reused.
    own_pid="$(cat "$RUNTIME_DIR/$daemon.pid" 2>/dev/null)"
    if [ -n "$own_pid" ] && [ "$(cat "/proc/$own_pid/comm" 2>/dev/null)" = "$daemon" ]; then
        log "stopping $daemon $own_pid left by an earlier run"
        stop_pid "$own_pid"
    elif [ "$daemon" != munged ] && pidof "$daemon" >/dev/null; then
        die "a $daemon not started by this script is running (pid $(pidof "$daemon")); stop it first"
    fi
done
if [ -e "$SLURM_CONF" ] && ! grep -qF "$CONF_MARKER" "$SLURM_CONF"; then
    die "$SLURM_CONF exists and was not written by this script; refusing to replace it"
fi
rm -rf "$RUNTIME_DIR"
mkdir -p "$RUNTIME_DIR"/{state,spool,log} /etc/slurm

# munge: reuse a running munged, otherwise start one as the munge user.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none ||
            die "could not create /etc/munge/munge.key"
        made_munge_key=1
    fi
    chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged 9>&- || die "munged did not start (see /var/log/munge/munged.log)"
    wait_until 10 "munged's pid file" test -s /run/munge/munged.pid || die "munged wrote no pid file"
    started_pids+=("$(cat /run/munge/munged.pid)")
    cp /run/munge/munged.pid "$RUNTIME_DIR/munged.pid"
    wait_until 10 "munge to answer" bash -c 'munge -n | unmunge >/dev/null 2>&1' || die "munge does not answer"
    log "started munged (pid ${started_pids[-1]})"
else
    log "munged already running: using it"
fi

# The node's real topology (slurmd -C), but a modest RealMemory: jobs ask for a few hundred MB.
topology="$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' |
    grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')"
[ -n "$topology" ] || topology="CPUs=$(nproc) "
NCPUS="$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$topology")"
total_mb="$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)"
real_mb=$((total_mb < 4096 ? total_mb / 2 : 2048))
cat >"$SLURM_CONF" <<EOF
$CONF_MARKER; removed when it ends.
ClusterName=rewardflow-test
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# No systemd and no cgroups here: track processes by parent PID, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No accounting database: sacct cannot answer, so the plugin queries squeue, which sees a
# finished job for MinJobAge seconds.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
KillWait=5
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=$RUNTIME_DIR/state
SlurmdSpoolDir=$RUNTIME_DIR/spool
SlurmctldPidFile=$RUNTIME_DIR/slurmctld.pid
SlurmdPidFile=$RUNTIME_DIR/slurmd.pid
SlurmctldLogFile=$RUNTIME_DIR/log/slurmctld.log
SlurmdLogFile=$RUNTIME_DIR/log/slurmd.log
NodeName=$NODE NodeAddr=127.0.0.1 ${topology}RealMemory=$real_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=60 State=UP
EOF
wrote_conf=1
slurmctld -D >"$RUNTIME_DIR/log/slurmctld.out" 2>&1 9>&- &
ctld_pid=$!
started_pids+=("$!")
log "started slurmctld (pid $!)"
wait_until 30 "slurmctld to answer" bash -c 'scontrol ping 2>/dev/null | grep -q UP' ||
    { show_tail "$RUNTIME_DIR/log/slurmctld.out"; die "slurmctld did not come up"; }
slurmd -D >"$RUNTIME_DIR/log/slurmd.out" 2>&1 9>&- &
started_pids+=("$!")
log "started slurmd (pid $!)"
node_idle() { [ "$(sinfo --noheader --nodes="$NODE" --format=%t 2>/dev/null)" = idle ]; }
wait_until 60 "node $NODE to become idle" node_idle ||
    { show_tail "$RUNTIME_DIR/log/slurmd.out"; sinfo >&2; die "node $NODE never became idle"; }
log "cluster up: partition $PARTITION, node $NODE ($topology), MinJobAge=3600"

# --- 4. The same demo run locally and on SLURM ---------------------------------------------------
make_workdir() { # make_workdir DIR: the quick start's layout, as the integration tests do it
    mkdir -p "$1"
    ln -s "$REPO/config" "$1/config"
    ln -s "$REPO/examples" "$1/examples"
}
export PATH="$SLURM_VENV/bin:$REPO/.venv/bin:$PATH"   # what sbatch --export=ALL hands to jobs
unset SNAKEMAKE_PROFILE
FAST=("simulator={'latency_ms': 5}")
# Long commands run in the background while the script waits for them, so that a signal
# stops the script at once (bash runs traps only between foreground commands).
start_bg() { # start_bg WORKDIR LOG COMMAND...: its PID goes to background_pid
    local workdir="$1" logfile="$2"
    shift 2
    (cd "$workdir" && exec timeout 300 "$@") >"$logfile" 2>&1 9>&- &
    background_pid=$!
}
wait_bg() { # wait_bg: the background command's exit status (124: timed out after 300 s)
    local status
    wait "$background_pid"
    status=$?
    background_pid=""
    return "$status"
}
start_slurm() { # start_slurm WORKDIR LOG ARGS...: the workflow with the SLURM test profile
    local workdir="$1" logfile="$2"
    shift 2
    start_bg "$workdir" "$logfile" "$SLURM_PY" -m snakemake --snakefile "$REPO/Snakefile" \
        --profile "$PROFILE" --cores "$NCPUS" "$@"
}

LOCAL="$RUNTIME_DIR/local"
make_workdir "$LOCAL"
log "local reference run (.venv's snakemake, --cores 2)"
start_bg "$LOCAL" "$RUNTIME_DIR/local.log" "$REPO/.venv/bin/snakemake" --snakefile "$REPO/Snakefile" \
    --cores 2 --config "${FAST[@]}"
wait_bg ||
    { show_tail "$RUNTIME_DIR/local.log"; die "the local reference run failed"; }

DEMO="$RUNTIME_DIR/slurm"
make_workdir "$DEMO"
log "SLURM run of the same config"
start_slurm "$DEMO" "$RUNTIME_DIR/slurm.log" --config "${FAST[@]}"
if wait_bg; then
    pass "the demo finished under SLURM"
else
    show_tail "$RUNTIME_DIR/slurm.log"
    die "the demo failed under SLURM (log: $RUNTIME_DIR/slurm.log)"
fi

"$MAIN_PY" - "$LOCAL/results/demo/summary.json" "$DEMO/results/demo/summary.json" "$DEMO_ROWS" <<'EOF'
import json, sys
local, slurm = (json.load(open(path)) for path in sys.argv[1:3])
rows = int(sys.argv[3])
problems = []
if slurm["counts"] != local["counts"]:
    problems.append(f"counts differ: slurm {slurm['counts']} vs local {local['counts']}")
if slurm["counts"]["prompts"] != rows or slurm["counts"]["failed"] != 0:
    problems.append(f"expected {rows} prompts and no failure, got {slurm['counts']}")
for name, reward in local["rewards"].items():
    other = slurm["rewards"].get(name, {})
    if (other.get("mean"), other.get("ci95")) != (reward["mean"], reward["ci95"]):
        problems.append(f"{name}: slurm mean {other.get('mean')} vs local {reward['mean']}")
print("\n".join(problems) or f"summary: counts {slurm['counts']}, accuracy mean "
      f"{slurm['rewards']['accuracy']['mean']} (local: {local['rewards']['accuracy']['mean']})")
sys.exit(1 if problems else 0)
EOF
[ $? -eq 0 ] && pass "summary.json under SLURM equals the local run's (counts, reward means)" ||
    fail "summary.json under SLURM differs from the local run's"

# Which jobs went through sbatch: squeue still lists them (MinJobAge), each with the comment
# the plugin gives it (rule_<rule>_wildcards_<values>, or rule_<group>_<rule> for a group).
squeue --noheader --states=all --format='%i|%T|%C|%k' >"$RUNTIME_DIR/slurm.jobs"
log "SLURM jobs of the run:"
sed 's/^/    /' "$RUNTIME_DIR/slurm.jobs"
count_jobs() { grep -c "$1" "$RUNTIME_DIR/slurm.jobs"; }
check "prepare_prompts ran as a SLURM job" test "$(count_jobs '|COMPLETED|.*|rule_prepare_prompts_')" -eq 1
check "4 generate_responses jobs ran as SLURM jobs, one per shard" \
    test "$(count_jobs '|COMPLETED|.*|rule_generate_responses_wildcards_demo_00[0-3]$')" -eq 4
check "the 4 scoring jobs went in 1 grouped submission" \
    test "$(count_jobs 'score_responses')" -eq 1 -a "$(count_jobs '|COMPLETED|.*|rule_scoring_score_responses$')" -eq 1
group_cpus="$(grep 'rule_scoring_score_responses' "$RUNTIME_DIR/slurm.jobs" | cut -d'|' -f3)"
check "the scoring group asked for at most the node's $NCPUS CPUs (asked: ${group_cpus:-?})" \
    test "${group_cpus:-999}" -le "$NCPUS"
# Locally the generation rule holds no core (threads 0); a SLURM job must still ask for one.
generation_cpus="$(grep 'rule_generate_responses_' "$RUNTIME_DIR/slurm.jobs" | cut -d'|' -f3 | sort -u | xargs)"
check "each generation job asked SLURM for 1 CPU (asked: ${generation_cpus:-?})" \
    test "$generation_cpus" = 1
check "snakemake reported every submission with its SLURM job id" \
    test "$(grep -c 'has been submitted with SLURM jobid' "$RUNTIME_DIR/slurm.log")" -ge 6
check "SLURM logs are under .snakemake/slurm_logs/" \
    test -n "$(find "$DEMO/.snakemake/slurm_logs/rule_generate_responses" -name '*.log' 2>/dev/null)"
if grep -q '^localrule aggregate_scores:' "$RUNTIME_DIR/slurm.log"; then
    log "note: aggregate_scores ran in the main process (a local rule)"
else
    log "note: aggregate_scores ran as a SLURM job (it is not a local rule)"
fi

# Shards in groups (jobs_per_step below the shard count): each group is a rule of its own, and
# each SLURM job re-reads the Snakefile, so it must find the same group rules as the main process.
GROUPED="$RUNTIME_DIR/grouped"
make_workdir "$GROUPED"
log "SLURM run of the same config, its 4 shards in 2 jobs per step (jobs_per_step=2)"
start_slurm "$GROUPED" "$RUNTIME_DIR/grouped.log" --config "${FAST[@]}" jobs_per_step=2
if wait_bg; then
    pass "the demo with shards in groups finished under SLURM"
else
    show_tail "$RUNTIME_DIR/grouped.log"
    die "the demo with shards in groups failed under SLURM (log: $RUNTIME_DIR/grouped.log)"
fi
check "its summary counts equal the local run's" \
    "$MAIN_PY" -c 'import json, sys; a, b = (json.load(open(p))["counts"] for p in sys.argv[1:]); sys.exit(a != b)' \
    "$LOCAL/results/demo/summary.json" "$GROUPED/results/demo/summary.json"
squeue --noheader --states=all --format='%i|%T|%C|%k' >"$RUNTIME_DIR/slurm.jobs"
check "2 generation jobs ran, one per group of 2 shards" \
    test "$(count_jobs '|COMPLETED|.*|rule_generate_responses_00[02]_00[13]')" -eq 2
check "the cluster run warned that the profile's per-shard settings miss the groups" \
    grep -q "jobs_per_step: 2 runs the 4 shards in groups" "$RUNTIME_DIR/grouped.log"

# --- 5. scancel a generation job mid-way, then rerun ---------------------------------------------
# 2 shards of 20 prompts, one request at a time, 400 ms each: about 8 s per generation job.
CANCEL="$RUNTIME_DIR/cancel"
make_workdir "$CANCEL"
SLOW=("simulator={'latency_ms': 400}" "generation={'concurrency': 1}" "shards=2")
per_shard=$((DEMO_ROWS / 2))
journal_lines() { # complete journal lines (a cancelled job may leave a torn last one)
    "$MAIN_PY" - "$CANCEL/results/cache" "$@" <<'EOF'
import json, pathlib, sys
root, names = pathlib.Path(sys.argv[1]), sys.argv[2:] or ["*"]
keys = []
for name in names:
    for path in root.glob(f"*/{name}.jsonl"):
        for line in path.read_text().splitlines():
            try:
                keys.append(json.loads(line)["key"])
            except (ValueError, KeyError, TypeError):
                pass
if len(keys) != len(set(keys)):
    print(f"duplicate responses in the cache: {len(keys)} lines, {len(set(keys))} keys")
    sys.exit(1)
print(len(keys))
EOF
}
shard0_started() { [ "$(cat "$CANCEL"/results/cache/*/demo.shard-000.jsonl 2>/dev/null | wc -l)" -ge 3 ]; }

log "cancel test: starting a slow run (2 shards, 400 ms per request, concurrency 1)"
start_slurm "$CANCEL" "$RUNTIME_DIR/cancel-1.log" --config "${SLOW[@]}"
wait_until 150 "3 responses of shard 000 in the cache" shard0_started ||
    { show_tail "$RUNTIME_DIR/cancel-1.log"; die "shard 000 never started answering"; }
job_id="$(squeue --noheader --states=RUNNING --format='%i|%k' |
    sed -n 's/^\([0-9]*\)|rule_generate_responses_wildcards_demo_000$/\1/p')"
[ -n "$job_id" ] || die "no running SLURM job for generate_responses shard 000"
scancel "$job_id" || die "scancel $job_id failed"
log "scancel $job_id (generate_responses shard 000) after $(journal_lines demo.shard-000) responses"
job_gone() {
    [ "$(squeue --noheader --states=all --jobs="$job_id" --format=%T 2>/dev/null)" = CANCELLED ]
}
wait_until 60 "job $job_id to be cancelled" job_gone || die "job $job_id was not cancelled"
wait_bg
first_status=$?
check "the interrupted run failed (exit status $first_status)" test "$first_status" -ne 0 -a "$first_status" -ne 124
check "snakemake saw the cancellation" grep -q "SLURM status is: 'CANCELLED'" "$RUNTIME_DIR/cancel-1.log"
check "the cancelled shard was not published" test ! -e "$CANCEL/results/demo/responses/shard-000.jsonl"
check "the other shard finished (keep-going)" test -s "$CANCEL/results/demo/responses/shard-001.jsonl"
before="$(journal_lines)" || die "the cache holds duplicate responses after the cancel: $before"
shard0_before="$(journal_lines demo.shard-000)"
missing=$((DEMO_ROWS - before))
log "cache after the cancel: $before responses, $shard0_before of shard 000; $missing missing"
check "the cancel hit shard 000 mid-way ($shard0_before of $per_shard answered)" \
    test "$shard0_before" -gt 0 -a "$shard0_before" -lt "$per_shard"

log "cancel test: rerunning"
start_slurm "$CANCEL" "$RUNTIME_DIR/cancel-2.log" --config "${SLOW[@]}"
if wait_bg; then
    pass "the rerun finished"
else
    show_tail "$RUNTIME_DIR/cancel-2.log"
    die "the rerun after the cancel failed (log: $RUNTIME_DIR/cancel-2.log)"
fi
after="$(journal_lines)" || die "the cache holds duplicate responses after the rerun: $after"
stats_file="$CANCEL/results/demo/responses/shard-000.stats.json"
[ -s "$stats_file" ] || die "the rerun wrote no generation report $stats_file"
read -r requested cached attempts < <("$MAIN_PY" -c '
import json, sys
stats = json.load(open(sys.argv[1]))
print(stats["requested"], stats["cached"], stats["attempts"])
' "$stats_file")
log "rerun: shard 000 had $cached from the cache, requested $requested ($attempts HTTP attempts)"
check "the rerun requested exactly the $missing missing responses (requested: $requested)" \
    test "$requested" -eq "$missing"
check "each requested response was sent once (HTTP attempts: $attempts)" test "$attempts" -eq "$requested"
check "the cache gained exactly the missing responses, none twice ($before + $missing = $after)" \
    test "$after" -eq "$DEMO_ROWS" -a "$((after - before))" -eq "$missing"
check "the rerun submitted one generation job, for shard 000 only" \
    test "$(grep -c 'slurm_logs/rule_generate_responses/' "$RUNTIME_DIR/cancel-2.log")" -eq 1 -a \
    "$(grep -c 'slurm_logs/rule_generate_responses/demo_000/' "$RUNTIME_DIR/cancel-2.log")" -eq 1
"$MAIN_PY" - "$LOCAL/results/demo/summary.json" "$CANCEL/results/demo/summary.json" <<'EOF'
import json, sys
local, resumed = (json.load(open(path)) for path in sys.argv[1:3])
same = resumed["counts"] == local["counts"] and all(
    resumed["rewards"][name]["mean"] == reward["mean"] for name, reward in local["rewards"].items()
)
sys.exit(0 if same else 1)
EOF
check "the resumed run's summary equals the local run's (counts, reward means)" test $? -eq 0

log "done in $((SECONDS - STARTED_AT))s"
