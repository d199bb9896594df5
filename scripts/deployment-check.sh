#!/usr/bin/env bash
# Runs DEPLOYMENT.md's "Three nodes on one machine (loopback)" walk-through
# exactly as written, then checks what it promises: every member ready on
# /readyz, every Discord shard run by exactly one member (/metrics
# ensemble_shards_held and ensemble_shards_ready), and each member exiting 0
# on SIGTERM within its node.shutdown_timeout.
#
# Which blocks run: in that section, each ```sh fence whose opening line
# comes after a line `<!-- deployment-check: STEP -->` (STEP a lowercase
# name; blank lines may stand between the two). Unmarked fences are prose.
# The marked blocks are sourced in order by one bash shell, started in the
# repository's root with `set -euo pipefail`, exactly as a reader running
# them in one shell would (so they share variables, functions and jobs).
# The checks run after the steps named `check` (readiness, shards) and
# `stop` (exit status and time, from its "node-N: exit status S after T ms"
# lines); both steps must exist.
#
# Isolation: the whole walk-through runs in a network namespace of its own
# (and a PID namespace, so that nothing it started can outlive it), made
# with unshare; its fixed ports then cannot clash with anything else on
# the machine. Where namespaces cannot be made (not root, a container that
# forbids them) it runs in the host's namespace, after checking that none of
# the doc's ports is in use. Only loopback addresses are used either way.
#
# DEPLOYMENT_CHECK_NAMESPACE=host skips the namespace (to try the fallback).
#
# Bounds: first, outside the namespace (which has no network), it fetches
# the modules and compiles the two commands, so that the walk-through's
# own `go build` finds the build cache warm; that warm-up is cut at
# DEPLOYMENT_CHECK_WARMUP seconds (default 600: a cold cache takes minutes
# on 2 cores; under `make test` the tests have warmed it already). The
# walk-through and the checks are then cut at DEPLOYMENT_CHECK_TIMEOUT
# seconds (default 120); every wait inside polls a condition (the doc's
# until_ok, at most 60 s each). Every process it started is stopped on any
# exit, and its scratch directory removed.
#
# Needs: go, etcd, redis-server, redis-cli, curl; unshare and ip for the
# namespace (Debian: apt-get install etcd-server redis-server curl iproute2).
set -euo pipefail

self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
repo=$(cd "$(dirname "$self")/.." && pwd)
doc=$repo/DEPLOYMENT.md
section='## Three nodes on one machine (loopback)'
limit=${DEPLOYMENT_CHECK_TIMEOUT:-120}
warmup=${DEPLOYMENT_CHECK_WARMUP:-600}

# fd 9 is the script's own stderr: the traps may run while a step's output
# is redirected to a file, and what they say must still reach the reader.
exec 9>&2
say() { printf 'deployment-check: %s\n' "$*" >&9; }
fail() { say "FAIL: $*"; exit 1; }

# extract DIR: writes the section's marked blocks to DIR/NN-STEP.sh and
# prints their paths in order.
extract() {
  awk -v section="$section" -v dir="$1" '
    $0 == section { in_section = 1; next }
    in_section && /^## / { in_section = 0 }
    !in_section { next }
    in_block && /^```/ { in_block = 0; close(file); next }
    in_block { print > file; next }
    match($0, /^<!-- deployment-check: [a-z][a-z0-9-]* -->$/) {
      step = $3; next
    }
    step != "" && /^```sh[[:space:]]*$/ {
      n++; file = sprintf("%s/%02d-%s.sh", dir, n, step); printf "" > file
      print file; in_block = 1; step = ""; next
    }
    step != "" && !/^[[:space:]]*$/ { step = "" }
  ' "$doc"
}

# ---------------------------------------------------------------------------
# Inner part: runs inside the namespace (or in the host's as a fallback).
# ---------------------------------------------------------------------------
if [[ ${1:-} == --inner ]]; then
  blocks_dir=$2
  deadline=$3 # seconds from now at which the watchdog stops the run
  if [[ ${DEPLOYMENT_CHECK_NETNS:-0} == 1 ]]; then
    ip link set lo up
  fi
  step=setup
  out=$blocks_dir/out
  : > "$out"
  shown=1
  # show: indents what a step or a process wrote, with anything that looks
  # like a credential masked (the Discord emulator prints its token).
  show() { sed -E 's/((TOKEN|PASSWORD|password|token)[=:] *)[^ ]+/\1<masked>/g; s/^/    | /' >&9; }

  cleanup() {
    local status=$? pids
    trap - EXIT ALRM INT TERM
    exec >&9 2>&9
    if ((status != 0)); then
      say "step '$step' failed (exit status $status)"
      if ((!shown)); then
        say "its output:"
        show < "$out"
      fi
      if [[ -n ${demo:-} && -d ${demo:-}/logs ]]; then
        for f in "$demo"/logs/*; do
          say "last lines of $(basename "$f"):"
          tail -n 15 "$f" | show
        done
      fi
    fi
    # The members drain within their shutdown_timeout; the rest stop at once.
    pids=$(jobs -p)
    if [[ -n $pids ]]; then
      kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 100); do
        kill -0 $pids 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL $pids 2>/dev/null || true
      wait 2>/dev/null || true
    fi
    kill -TERM "$watchdog" 2>/dev/null || true
    exit "$status"
  }
  trap cleanup EXIT
  trap 'say "interrupted during step '\''$step'\''"; exit 130' INT TERM
  trap 'say "time is up (${limit} s) during step '\''$step'\''"; exit 124' ALRM
  # A watchdog, not a synchronisation: it only fires if a step hangs.
  # Disowned, so that the doc's own `jobs -p` and `wait` leave it alone.
  # bash runs the ALRM trap only once the foreground command has ended, so
  # a second later the watchdog ends the shell's children (by parent PID).
  (
    trap 'kill "$sleeper" 2>/dev/null; wait "$sleeper"; exit 0' TERM
    trap - ALRM INT
    sleep "$deadline" &
    sleeper=$!
    wait "$sleeper" || exit 0
    kill -ALRM $$ 2>/dev/null
    sleep 1 &
    sleeper=$!
    wait "$sleeper" || exit 0
    pkill -TERM -P $$ 2>/dev/null
  ) &
  watchdog=$!
  disown "$watchdog"

  metric() { # metric PORT NAME: NAME's value on the member at PORT, or ""
    curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null |
      awk -v m="$2" '$1 == m && v == "" {v = $2 + 0} END {print v}'
  }
  ready() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$1/readyz"; }
  # config_of N: the configuration file member N starts with: the --config
  # of the start step's line that writes node-N.pid (in $demo).
  config_of() {
    local cfg
    cfg=$(grep -F -- "node-$1.pid" "$blocks_dir"/*-start.sh | grep -o -- '--config [^ ]*' | head -n 1 | awk '{print $2}')
    [[ -n $cfg ]] || fail "the start step has no line with --config that writes node-$1.pid"
    [[ $cfg == /* ]] || cfg=$demo/$cfg
    [[ -f $cfg ]] || fail "node-$1's configuration $cfg does not exist"
    printf '%s\n' "$cfg"
  }

  # check_cluster: every member ready and every shard run (held and
  # connected) by exactly one member. Ready members answer for each shard
  # the cluster placed on them, so with all ready, held == ready == the
  # shard count means no shard is run twice and none is missing.
  check_cluster() {
    local cfg shard_count admin_ports p held ready_n sum_held sum_ready end last=""
    cfg=$(config_of 1) || exit 1
    shard_count=$(awk '$1 == "shard_count:" {print $2; exit}' "$cfg")
    [[ -n $shard_count ]] || shard_count=1 # the default, when the config leaves it out
    admin_ports=$(grep -ho -- '--admin-addr 127\.0\.0\.1:[0-9]*' "$blocks_dir"/*-start.sh | sed 's/.*://')
    [[ $(wc -w <<<"$admin_ports") -eq 3 ]] || fail "expected three --admin-addr in the start step, found: $admin_ports"
    end=$((SECONDS + 30))
    while :; do
      sum_held=0 sum_ready=0 last=""
      local ok=1
      for p in $admin_ports; do
        if ! ready "$p"; then ok=0; last+=" $p:unready"; continue; fi
        held=$(metric "$p" ensemble_shards_held)
        ready_n=$(metric "$p" ensemble_shards_ready)
        if [[ -z $held || -z $ready_n ]]; then ok=0; last+=" $p:no-metrics"; continue; fi
        last+=" $p:held=$held,ready=$ready_n"
        sum_held=$((sum_held + held)) sum_ready=$((sum_ready + ready_n))
      done
      if ((ok && sum_held == shard_count && sum_ready == shard_count)); then
        say "ok: 3 members ready; $shard_count shards, each run by exactly one member ($last )"
        return 0
      fi
      ((SECONDS < end)) || fail "members not ready or shards not run once each after 30 s (shard_count $shard_count):$last"
      sleep 0.2
    done
  }

  # check_stops: three "node-N: exit status S after T ms" lines, S 0 and T
  # under the member's node.shutdown_timeout.
  check_stops() {
    local lines n status ms cfg timeout_ms count=0
    lines=$(grep -E '^node-[0-9]+: exit status [0-9]+ after [0-9]+ ms$' "$out" || true)
    while read -r n _ _ status _ ms _; do
      [[ -n $n ]] || continue
      n=${n%:}
      cfg=$(config_of "${n#node-}") || exit 1
      timeout_ms=$(awk '$1 == "shutdown_timeout:" {print $2; exit}' "$cfg")
      case $timeout_ms in
        *ms) timeout_ms=${timeout_ms%ms} ;;
        *s) timeout_ms=$((${timeout_ms%s} * 1000)) ;;
        "") timeout_ms=5000 ;; # the default, when the config leaves it out
        *) fail "$cfg: cannot read shutdown_timeout '$timeout_ms'" ;;
      esac
      ((status == 0)) || fail "$n exited with status $status on SIGTERM"
      ((ms < timeout_ms)) || fail "$n took $ms ms to exit, not under its shutdown_timeout ($timeout_ms ms)"
      say "ok: $n exited 0, $ms ms after SIGTERM (shutdown_timeout $timeout_ms ms)"
      count=$((count + 1))
    done <<<"$lines"
    ((count == 3)) || fail "expected three 'node-N: exit status S after T ms' lines from the stop step, got $count"
  }

  cd "$repo"
  set -euo pipefail
  for f in "$blocks_dir"/[0-9]*.sh; do
    step=$(basename "$f" .sh)
    step=${step#*-}
    echo "$step" > "$blocks_dir/step"
    say "step $step"
    : > "$out"
    shown=0
    # shellcheck disable=SC1090 # the doc's own commands
    source "$f" > "$out" 2>&1
    show < "$out"
    shown=1
    case $step in
      check) check_cluster ;;
      stop) check_stops ;;
    esac
  done
  step=finished
  exit 0
fi

# ---------------------------------------------------------------------------
# Outer part: prerequisites, the doc's blocks, the namespace, the time bound.
# ---------------------------------------------------------------------------
script_start=$SECONDS
[[ -f $doc ]] || fail "$doc not found"
for bin in go etcd redis-server redis-cli curl awk timeout; do
  command -v "$bin" >/dev/null || fail "$bin not found (Debian: apt-get install etcd-server redis-server curl)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/deployment-check.XXXXXX")
inner_pid=""
outer_cleanup() {
  local status=$?
  if [[ -n $inner_pid ]] && kill -0 "$inner_pid" 2>/dev/null; then
    kill -TERM "$inner_pid" 2>/dev/null || true
    wait "$inner_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap outer_cleanup EXIT
trap 'exit 130' INT TERM

mkdir -m 700 "$work/blocks" "$work/tmp"
mapfile -t blocks < <(extract "$work/blocks")
((${#blocks[@]} > 0)) || fail "no marked blocks in DEPLOYMENT.md's section '$section'"
for want in check stop; do
  ls "$work/blocks"/[0-9]*-"$want".sh >/dev/null 2>&1 || fail "DEPLOYMENT.md's section has no block marked '<!-- deployment-check: $want -->'"
done
say "${#blocks[@]} blocks from DEPLOYMENT.md: $(printf '%s\n' "${blocks[@]}" | sed 's|.*/[0-9]*-||; s|\.sh$||' | paste -sd' ')"

# The namespace has no network: the module cache must hold every module.
# Compiling (without linking: several main packages) fills the build cache.
warm_start=$SECONDS
(cd "$repo" && timeout "$warmup" go mod download && timeout "$warmup" go build ./cmd/node ./cmd/emulator) ||
  fail "fetching modules or compiling ./cmd/node and ./cmd/emulator failed or took over ${warmup} s"
say "modules and build cache ready in $((SECONDS - warm_start)) s"
start=$SECONDS

run_inner() { # run_inner ENV...: the inner part, bounded in time
  local remaining=$((limit - (SECONDS - start)))
  ((remaining > 15)) || fail "no time left for the walk-through (${limit} s)"
  env TMPDIR="$work/tmp" "$@" bash "$self" --inner "$work/blocks" $((remaining - 5)) &
  inner_pid=$!
  local status=0
  wait "$inner_pid" || status=$?
  inner_pid=""
  return "$status"
}

if [[ ${DEPLOYMENT_CHECK_NAMESPACE:-} != host ]] &&
  unshare --net --pid --fork --kill-child --mount-proc sh -c 'ip link set lo up' 2>/dev/null; then
  say "running in a network and PID namespace of its own"
  # --kill-child: if unshare dies, the namespace's first process is killed,
  # and with it every process in the namespace.
  status=0
  run_inner timeout --kill-after=5 $((limit - (SECONDS - start))) \
    unshare --net --pid --fork --kill-child --mount-proc env DEPLOYMENT_CHECK_NETNS=1 || status=$?
else
  if [[ ${DEPLOYMENT_CHECK_NAMESPACE:-} == host ]]; then
    say "DEPLOYMENT_CHECK_NAMESPACE=host: using the host's network namespace after checking its ports"
  else
    say "cannot make a network namespace here (needs root, unshare and ip, and a kernel that allows it); using the host's after checking its ports"
  fi
  ports=$(cat "$work"/blocks/*.sh | grep -o '127\.0\.0\.1:[0-9]\+' | sed 's/.*://' | sort -un)
  busy=""
  for p in $ports; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy+=" $p"; fi
  done
  [[ -z $busy ]] || fail "ports in use on 127.0.0.1:$busy; DEPLOYMENT.md's walk-through needs them free (or run this as root where network namespaces can be made)"
  status=0
  run_inner timeout --kill-after=5 $((limit - (SECONDS - start))) env DEPLOYMENT_CHECK_NETNS=0 || status=$?
fi
if ((status == 0)); then
  say "passed: the walk-through and its checks took $((SECONDS - start)) s, $((SECONDS - script_start)) s in all"
elif ((status == 124 || status == 137)); then
  fail "cut after ${limit} s, during step '$(cat "$work/blocks/step" 2>/dev/null || echo setup)'"
else
  fail "the walk-through failed (exit status $status)"
fi
