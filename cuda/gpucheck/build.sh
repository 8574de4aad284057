#!/usr/bin/env bash
# Builds the project's GPU check on a machine without a GPU or CUDA toolkit:
# the cuda and rotary test binaries and the benchmark, into gpu/ (ignored by
# git) or the directory given. They link against libc alone (the driver and NVRTC are
# dlopen'd at run time), which this script checks, and it shows that here,
# without a driver, they say so. Then, on the GPU machine, run
# cuda/gpucheck/run.sh from the repository root.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/gpu}
mkdir -p "$out"
cd "$root"

export CGO_ENABLED=1
go test -c -o "$out/cuda.test" ./cuda
go test -c -o "$out/rotary.test" ./rotary
go build -o "$out/bench" ./cuda/gpucheck/bench

for bin in "$out/cuda.test" "$out/rotary.test" "$out/bench"; do
	# Anything beyond the C library and the dynamic loader would have to be
	# on the GPU machine too.
	extra=$(ldd "$bin" | awk '{print $1}' | grep -vE '^(linux-vdso\.so|/lib64/ld-linux|libc\.so|libdl\.so|libpthread\.so)' || true)
	if [ -n "$extra" ]; then
		echo "build.sh: $bin links more than libc: $extra" >&2
		exit 1
	fi
	glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
	echo "built $bin: links $(ldd "$bin" | awk '{print $1}' | grep -E '^lib' | tr '\n' ' ')(needs $glibc or newer)"
done

echo "without a driver here, the benchmark should say so:"
status=0
"$out/bench" || status=$?
if [ "$status" -ne 2 ]; then
	echo "build.sh: bench exited with $status, not 2 (no driver)" >&2
	exit 1
fi
