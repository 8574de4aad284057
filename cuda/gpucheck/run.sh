#!/usr/bin/env bash
# Runs on the GPU machine (CUDA driver, no Go needed) what build.sh built
# elsewhere, every GPU check of the project in one call: the NVRTC compile
# check with the machine's own NVRTC (the table for the GPU's architecture,
# then every architecture), the cuda package's tests, which then run on the
# GPU as well as on the host backend, the kernel packages' tests (their
# kernels on the device against the Go CPU reference), rotary's GPU
# benchmarks (misses streamed as a share of pinned bandwidth, copies hidden
# behind compute), the benchmark table, and the model benchmark on the
# Qwen3-30B-A3B and Qwen3.5-35B-A3B presets, last. Logs go to $OUT when it is
# set, else to the binaries' directory.
#
#   cuda/gpucheck/run.sh [binary-dir]     (default: gpu/ in the repository)
#
# It is meant to fit one call of 10 minutes: the model benchmark gets what
# is left of GPUCHECK_SECONDS (default 560) and, cut short, prints the
# budgets it measured. The presets (MODELS, default $TMPDIR/rotary-models)
# are written in the background while the checks before it run.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/gpu}
logs=${OUT:-$bin}
if [ ! -x "$bin/cuda.test" ] || [ ! -x "$bin/rotary.test" ] || [ ! -x "$bin/bench" ] || [ ! -x "$bin/nvrtc" ] ||
	[ ! -x "$bin/model-bench" ] || [ ! -x "$bin/inspect" ] ||
	[ ! -f "$bin/kernels.list" ]; then
	echo "run.sh: no binaries in $bin: run cuda/gpucheck/build.sh first" >&2
	exit 2
fi
mkdir -p "$logs"
deadline=${GPUCHECK_SECONDS:-560}

# The model benchmark's presets (17.3 and 19.7 GiB), each written once if
# the disk has room: about 40 s apiece, mostly the kernel copying pages, so
# they are written while the GPU checks run. A write cut short by a kill
# leaves a .partial file, removed here before writing again.
models=${MODELS:-${TMPDIR:-/tmp}/rotary-models}
presets=(qwen3moe-30b-a3b qwen35moe-35b-a3b)
write_presets() {
	local failed=0 preset file free_kib
	for preset in "${presets[@]}"; do
		file="$models/$preset.gguf"
		if [ -s "$file" ]; then
			echo "$preset: $file is there"
			continue
		fi
		rm -f "$file".*.partial
		free_kib=$(df -Pk "$models" | awk 'NR==2 {print $4}')
		if [ "$free_kib" -lt $((22 * 1024 * 1024)) ]; then
			echo "$preset: skipped, $((free_kib / 1024 / 1024)) GiB free in $models, it needs about 21"
			continue
		fi
		if "$bin/inspect" -synth "$preset" -o "$file" >"$logs/gpucheck-synth-$preset.log" 2>&1; then
			echo "$preset: $(grep '^wrote' "$logs/gpucheck-synth-$preset.log")"
		else
			echo "$preset: writing $file failed (see $logs/gpucheck-synth-$preset.log)"
			failed=1
		fi
	done
	return $failed
}
writer=
if mkdir -p "$models"; then
	write_presets >"$logs/gpucheck-synth.log" 2>&1 &
	writer=$!
else
	echo "run.sh: cannot make $models: the model benchmark will be skipped" >"$logs/gpucheck-synth.log"
fi
# wait_presets waits for the writer once (before the bandwidth benchmarks,
# whose host copies it would slow): presets_status is then its exit status.
presets_status=
wait_presets() {
	[ -z "$presets_status" ] || return 0
	presets_status=1
	[ -z "$writer" ] || {
		wait "$writer"
		presets_status=$?
	}
}

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current --format=csv,noheader ||
	echo "(nvidia-smi not available)"
ls /usr/local/cuda*/lib64/libnvrtc.so* 2>/dev/null | head -3

echo "== NVRTC: every kernel for this GPU's architecture, with this machine's NVRTC"
# Exit 3: no NVRTC here (it names what it tried), which is no failure of the
# kernels; the cuda tests below then say the same.
"$bin/nvrtc" -arch device 2>&1 | tee "$logs/gpucheck-nvrtc.log"
nvrtc=${PIPESTATUS[0]}
if [ "$nvrtc" -ne 3 ]; then
	echo "== NVRTC: every architecture (sm_75 ... sm_90), with this machine's NVRTC"
	"$bin/nvrtc" -j "$(nproc)" >"$logs/gpucheck-nvrtc-all.log" 2>&1
	all=$?
	sed -n '1p;/^\(ok\|FAIL\)/,$p' "$logs/gpucheck-nvrtc-all.log"
	[ "$all" -eq 0 ] || nvrtc=$all
else
	nvrtc=0
fi

echo "== tests"
work=$(mktemp -d)
(cd "$work" && "$bin/cuda.test" -test.v -test.count=1 -test.timeout=5m) 2>&1 | tee "$logs/gpucheck-tests.log" |
	grep -E '^(=== RUN|--- |    --- |ok|FAIL|PASS|panic)|no GPU|skip' | grep -vE '^=== RUN'
tests=${PIPESTATUS[0]}
rm -rf "$work"

echo "== kernel tests on the device (the kernel packages of build.sh)"
kernels=0
while read -r -u 3 dir test benchmarks; do
	# In the package's directory, as go test runs it, for its testdata.
	# Then its benchmarks: the decode kernels' report GB/s on the GPU (and
	# skip on the emulator).
	(cd "$root/$dir" && "$bin/$test" -test.v -test.count=1 -test.timeout=10m -test.bench "$benchmarks" -test.benchtime 200x) 2>&1 |
		tee "$logs/gpucheck-$(basename "$test" .test).log" |
		grep -E '^(Benchmark|--- |    --- |ok|FAIL|PASS|panic)|no GPU|skip'
	status=${PIPESTATUS[0]}
	echo "$dir: exit $status"
	[ "$status" -eq 0 ] || kernels=$status
done 3<"$bin/kernels.list"
[ -s "$bin/kernels.list" ] || echo "(none yet)"

wait_presets
echo "== rotary: expert misses on the GPU (targets: %pinned >= 85, %hidden near 100)"
work=$(mktemp -d)
(cd "$work" && "$bin/rotary.test" -test.v -test.run '^$' -test.bench GPU -test.benchtime 200x -test.count 3) 2>&1 |
	tee "$logs/gpucheck-rotary.log" | grep -E '^(Benchmark|ok|FAIL|PASS|panic)|skip|no GPU'
rotary=${PIPESTATUS[0]}
rm -rf "$work"

echo "== CUDA graphs: a step of 64 launches one by one against one graph replay"
work=$(mktemp -d)
(cd "$work" && "$bin/cuda.test" -test.run '^$' -test.bench GraphStep -test.benchtime 200x) 2>&1 |
	tee "$logs/gpucheck-graphs.log" | grep -E '^(Benchmark|ok|FAIL|PASS|panic)|skip'
graphs=${PIPESTATUS[0]}
rm -rf "$work"

echo "== benchmark"
"$bin/bench" 2>&1 | tee "$logs/gpucheck-bench.log"
bench=${PIPESTATUS[0]}

# The table users compare with llama.cpp's --n-cpu-moe (llama-bench's
# pp512 and tg128): the presets at 14 GiB of VRAM (the target's budget,
# first), all experts resident, 10 and 6 GiB, each with residency decided
# on the host and on the device side by side, one run per budget so that
# both fit the time left. A preset the
# disk could not hold is skipped; one without time left is skipped, saying
# so; one cut short prints the budgets it measured (timeout's SIGINT).
echo "== model benchmark (examples/bench): 512-token prefill, 128-token decode, one run per budget, -backend cuda"
wait_presets
table=$presets_status
cat "$logs/gpucheck-synth.log"
ready=() # the presets written; the lines above say why any other is not
for preset in "${presets[@]}"; do
	[ ! -s "$models/$preset.gguf" ] || ready+=("$preset")
done
for i in "${!ready[@]}"; do
	preset=${ready[$i]}
	file="$models/$preset.gguf"
	# The presets still to run share the time left equally; a kill 10 s
	# after the SIGINT if the benchmark does not stop.
	share=$(((deadline - SECONDS) / (${#ready[@]} - i) - 10))
	if [ "$share" -lt 30 ]; then
		echo "$preset: skipped, $((deadline - SECONDS)) s left of GPUCHECK_SECONDS=$deadline"
		table=1
		continue
	fi
	echo "-- $preset (at most $share s)"
	timeout -s INT -k 10 "$share" "$bin/model-bench" -model "$file" -backend cuda -budgets 14GiB,all,10GiB,6GiB \
		-prompt 512 -gen 128 -runs 1 2>&1 | tee "$logs/gpucheck-model-bench-$preset.log"
	status=${PIPESTATUS[0]}
	case $status in
	0) ;;
	124 | 137) echo "$preset: model-bench cut after $share s (exit $status): the rows above are the budgets it measured" ;;
	*) echo "$preset: model-bench failed (exit $status): the error is above" ;;
	esac
	[ "$status" -eq 0 ] || table=$status
done

echo "== result: nvrtc exit $nvrtc, cuda tests exit $tests, kernel tests exit $kernels, rotary benchmarks exit $rotary, graphs exit $graphs, bench exit $bench, model table exit $table (logs in $logs)"
[ "$nvrtc" -eq 0 ] && [ "$tests" -eq 0 ] && [ "$kernels" -eq 0 ] && [ "$rotary" -eq 0 ] && [ "$graphs" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$table" -eq 0 ]
