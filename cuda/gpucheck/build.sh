#!/usr/bin/env bash
# Builds the project's GPU check on a machine without a GPU or CUDA toolkit:
# the cuda and rotary test binaries, the kernel packages' test binaries, the
# benchmark and the NVRTC compile check, into gpu/ (ignored by git) or the
# directory given. They link against libc alone (the driver and NVRTC are
# dlopen'd at run time), which this script checks, and it shows that here,
# without a driver, they say so. Then, on the GPU machine, run
# cuda/gpucheck/run.sh from the repository root.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/gpu}
mkdir -p "$out"
cd "$root"

# Kernel packages: packages whose tests run CUDA C kernels against the Go CPU
# reference (and, for rotary/model and rotary/engine, the GPU backend against
# llama.cpp's oracle and the CPU engine). On a GPU those tests run on the
# device as well, so run.sh runs each one's test binary there, in the
# package's directory (as go test would), then the benchmarks named after
# the colon (none after "^$"). One package per line.
kernel_packages=(
	./rotary/model/gpu:Decode
	./rotary/moe:Decode
	./rotary/device:ResolveFill
	./rotary/model:^$
	./rotary/engine:^$
)

export CGO_ENABLED=1
go test -c -o "$out/cuda.test" ./cuda
go test -c -o "$out/rotary.test" ./rotary
go build -o "$out/bench" ./cuda/gpucheck/bench
go build -o "$out/nvrtc" ./cuda/gpucheck/nvrtc
# The model benchmark and the synthetic model writer, for the table at the
# end of run.sh.
go build -o "$out/model-bench" ./examples/bench
go build -o "$out/inspect" ./examples/inspect
bins=("$out/cuda.test" "$out/rotary.test" "$out/bench" "$out/nvrtc" "$out/model-bench" "$out/inspect")

# kernels.list: one line per kernel package, its directory, its test
# binary and its benchmarks, for run.sh.
mkdir -p "$out/kernels"
: >"$out/kernels.list"
for entry in "${kernel_packages[@]}"; do
	pkg=${entry%%:*}
	name=$(echo "${pkg#./}" | tr / -).test
	go test -c -o "$out/kernels/$name" "$pkg"
	echo "${pkg#./} kernels/$name ${entry#*:}" >>"$out/kernels.list"
	bins+=("$out/kernels/$name")
done

for bin in "${bins[@]}"; do
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

echo "without a driver here, the model benchmark should say so with -backend cuda, and run on the CPU with auto:"
status=0
msg=$("$out/model-bench" -backend cuda 2>&1) || status=$?
if [ "$status" -ne 1 ] || ! echo "$msg" | grep -q 'no GPU'; then
	echo "build.sh: model-bench -backend cuda exited with $status: $msg" >&2
	exit 1
fi
echo "$msg"
status=0
table=$("$out/model-bench" -prompt 8 -gen 8 -runs 1 2>&1) || status=$?
if [ "$status" -ne 0 ] || ! echo "$table" | grep -q '^backend  host'; then
	echo "build.sh: model-bench -backend auto did not run on the host (exit $status): $table" >&2
	exit 1
fi
echo "$table" | grep -E '^(backend|  VRAM budget| +[0-9])'

# The compile check runs here too when this machine has NVRTC (3: it has
# none); on the GPU machine run.sh runs it with the device's NVRTC.
echo "the NVRTC check, for sm_90 here:"
status=0
log=$("$out/nvrtc" -arch sm_90 2>&1) || status=$?
case $status in
0) echo "$log" | tail -1 ;;
3) echo "$log" ;;
*)
	echo "$log" >&2
	echo "build.sh: nvrtc exited with $status" >&2
	exit 1
	;;
esac
