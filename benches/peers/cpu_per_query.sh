#!/bin/bash
# User and system CPU per query, from /proc/PID/stat (utime, stime) before and after a
# dnsperf run, for Meridian and gdnsd (and any adapter of ../shared/bench/dns/servers),
# on the harness's query sets and on the uncacheable ones of uncacheable_queries.py.
#   benches/peers/cpu_per_query.sh [SERVER...]      (default: meridian gdnsd)
# Pinned as the harness pins: server on CPU 1, dnsperf on CPU 0. DURATION (10) seconds per
# run, RUNS (2) interleaved runs; MERIDIAN_BIN picks the binary of "meridian", and the
# server "baseline" is meridian.sh with BASELINE_BIN (an older build, to compare).
# Prints one line per (run, server, test): qps, user us/query, system us/query.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HARNESS=${HARNESS:-$HERE/../../../shared/bench/dns}
DURATION=${DURATION:-10} RUNS=${RUNS:-2} PORT=${PORT:-15353}
SERVERS=("$@"); (( ${#SERVERS[@]} )) || SERVERS=(meridian gdnsd)
TESTS=${TESTS:-"static geo-ecs static-0x20 geo-ecs-200k nx-random"}
SCRATCH=$(mktemp -d /tmp/cpq.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
DATA=$SCRATCH/data
# shellcheck source=/dev/null
source "$HARNESS/lib/common.sh"
gen_data "$HARNESS" "$DATA" > /dev/null
python3 "$HERE/uncacheable_queries.py" "$DATA/queries"
HZ=$(getconf CLK_TCK)

ticks() { awk '{sub(/^.*\) /,""); print $12, $13}' "/proc/$1/stat"; }   # utime stime

for rep in $(seq "$RUNS"); do
  for server in "${SERVERS[@]}"; do
    work=$(mktemp -d "$SCRATCH/$server.XXXX")
    if [[ $server == meridian ]]; then
        taskset -c 1 "$HERE/meridian.sh" "$PORT" "$DATA" "$work" 1 > "$work/log" 2>&1 &
    elif [[ $server == baseline ]]; then
        MERIDIAN_BIN=$BASELINE_BIN taskset -c 1 "$HERE/meridian.sh" "$PORT" "$DATA" "$work" 1 > "$work/log" 2>&1 &
    else
        THREADS=1 taskset -c 1 "$HARNESS/servers/$server.sh" run "$PORT" "$DATA" "$work" > "$work/log" 2>&1 &
    fi
    pid=$!
    wait_ready "$PORT" 60 "$pid" || { echo "$server did not start"; tail "$work/log"; kill "$pid"; continue; }
    # the process that answers: the adapter execs it, but some daemons fork workers
    srv=$(descendants "$pid" | tail -1)
    for t in $(ls /proc/"$srv"/task); do taskset -p -c 1 "$t" > /dev/null 2>&1 || true; done
    for test in $TESTS; do
        case $test in
        static) file=$DATA/queries/static.txt; flags=() ;;
        geo-ecs) file=$DATA/queries/geo-ecs.bin; flags=(-B) ;;
        *) file=$DATA/queries/$test.bin; flags=(-B) ;;
        esac
        dp=(taskset -c 0 dnsperf -s 127.0.0.1 -p "$PORT" -d "$file" "${flags[@]}" -c 4 -q 100 -t 2
            -O suppress=timeout,unexpected)
        "${dp[@]}" -l 2 > /dev/null 2>&1
        read -r u0 s0 < <(ticks "$srv")
        "${dp[@]}" -l "$DURATION" > "$work/$test.out" 2>&1
        read -r u1 s1 < <(ticks "$srv")
        completed=$(awk '/Queries completed/{print $3}' "$work/$test.out")
        qps=$(awk '/Queries per second/{print $4}' "$work/$test.out")
        awk -v r="$rep" -v n="$server" -v t="$test" -v q="$qps" -v c="$completed" -v hz="$HZ" \
            -v du=$((u1 - u0)) -v ds=$((s1 - s0)) 'BEGIN{
            printf "%s\t%-9s\t%-13s\t%8.0f qps\tuser %.3f\tsys %.3f\ttotal %.3f us/query\n",
                   r, n, t, q, du/hz*1e6/c, ds/hz*1e6/c, (du+ds)/hz*1e6/c }'
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
done
