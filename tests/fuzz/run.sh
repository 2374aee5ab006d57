#!/bin/sh
# Runs the libFuzzer targets for a bounded time each (tests/fuzz/README.md).
#   tests/fuzz/run.sh BUILD_DIR SECONDS [JOBS] [TARGET...]
# Seeds come from tests/fuzz/corpus/<target> (read only); new inputs go to
# BUILD_DIR/corpus/<target>, crash reproducers to BUILD_DIR/artifacts/
# <target>/, the full output to BUILD_DIR/logs/<target>.log. JOBS targets
# run at a time (default 1). Prints one line per target and exits non-zero
# if any target crashed, leaked, timed out or ran out of memory.
set -u

build=${1:?usage: run.sh BUILD_DIR SECONDS [JOBS] [TARGET...]}
seconds=${2:?usage: run.sh BUILD_DIR SECONDS [JOBS] [TARGET...]}
jobs=${3:-1}
[ $# -ge 3 ] && shift 3 || shift $#
targets=${*:-"fuzz_ws_command fuzz_ws_frames fuzz_http_request fuzz_codec fuzz_snapshot"}
here=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$build/logs"

run_one() {
	t=$1
	mkdir -p "$build/corpus/$t" "$build/artifacts/$t"
	# -timeout: one input taking longer than this is a finding (a hang).
	"$build/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=25 \
		-print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
		"$build/corpus/$t" "$here/corpus/$t" >"$build/logs/$t.log" 2>&1
	echo $? >"$build/logs/$t.rc"
}

summary() {
	t=$1
	log=$build/logs/$t.log
	rc=$(cat "$build/logs/$t.rc" 2>/dev/null || echo 1)
	execs=$(grep -a '^stat::number_of_executed_units:' "$log" | sed 's/.*: *//' | tail -n 1)
	rate=$(grep -a '^stat::average_exec_per_sec:' "$log" | sed 's/.*: *//' | tail -n 1)
	last=$(grep -aE '^#[0-9]+[[:space:]].*cov: ' "$log" | tail -n 1)
	cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
	ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
	corp=$(echo "$last" | sed -n 's/.*corp: \([0-9]*\)\/.*/\1/p')
	if [ "$rc" = 0 ]; then
		status=ok
	else
		status="FAILED (exit $rc)"
	fi
	printf '%-18s %s: %s runs in %ss, %s exec/s, cov %s, ft %s, corpus %s\n' \
		"$t" "$status" "${execs:-?}" "$seconds" "${rate:-?}" "${cov:-?}" \
		"${ft:-?}" "${corp:-?}"
	if [ "$rc" != 0 ]; then
		grep -aE 'ERROR|fuzz check failed|SUMMARY|Test unit written|deadly signal' "$log" |
			head -n 5 | sed 's/^/    /'
		echo "    log: $log"
	fi
	[ "$rc" = 0 ]
}

echo "fuzzing $targets: ${seconds}s each, $jobs at a time"
set -- $targets
while [ $# -gt 0 ]; do
	batch=
	i=0
	while [ $# -gt 0 ] && [ "$i" -lt "$jobs" ]; do
		run_one "$1" &
		batch="$batch $1"
		i=$((i + 1))
		shift
	done
	wait
	for t in $batch; do
		summary "$t" || echo "$t" >>"$build/logs/failed"
	done
done
if [ -s "$build/logs/failed" ]; then
	echo "fuzz: FAILED:" $(cat "$build/logs/failed")
	rm -f "$build/logs/failed"
	exit 1
fi
echo "fuzz: all targets ok"
