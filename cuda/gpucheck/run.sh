#!/usr/bin/env bash
# Runs on the GPU machine (CUDA driver, no Go needed) what build.sh built
# elsewhere, every GPU check of the project in one call: the cuda package's
# tests, which then run on the GPU as well as on the host backend, rotary's
# GPU benchmarks (misses streamed as a share of pinned bandwidth, copies
# hidden behind compute), and the benchmark table, last. Logs go to $OUT when it is
# set, else to the binaries' directory.
#
#   cuda/gpucheck/run.sh [binary-dir]     (default: gpu/ in the repository)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/gpu}
logs=${OUT:-$bin}
if [ ! -x "$bin/cuda.test" ] || [ ! -x "$bin/rotary.test" ] || [ ! -x "$bin/bench" ]; then
	echo "run.sh: no binaries in $bin: run cuda/gpucheck/build.sh first" >&2
	exit 2
fi
mkdir -p "$logs"

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader ||
	echo "(nvidia-smi not available)"
ls /usr/local/cuda*/lib64/libnvrtc.so* 2>/dev/null | head -3

echo "== tests"
work=$(mktemp -d)
(cd "$work" && "$bin/cuda.test" -test.v -test.count=1 -test.timeout=5m) 2>&1 | tee "$logs/gpucheck-tests.log" |
	grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS|panic)|no GPU|skip' | grep -vE '^=== RUN'
tests=${PIPESTATUS[0]}
rm -rf "$work"

echo "== rotary: expert misses on the GPU (targets: %pinned >= 85, %hidden near 100)"
work=$(mktemp -d)
(cd "$work" && "$bin/rotary.test" -test.v -test.run '^$' -test.bench GPU -test.benchtime 200x -test.count 3) 2>&1 |
	tee "$logs/gpucheck-rotary.log" | grep -E '^(Benchmark|ok|FAIL|PASS|panic)|skip|no GPU'
rotary=${PIPESTATUS[0]}
rm -rf "$work"

echo "== benchmark"
"$bin/bench" 2>&1 | tee "$logs/gpucheck-bench.log"
bench=${PIPESTATUS[0]}

echo "== result: cuda tests exit $tests, rotary benchmarks exit $rotary, bench exit $bench (logs in $logs)"
[ "$tests" -eq 0 ] && [ "$rotary" -eq 0 ] && [ "$bench" -eq 0 ]
