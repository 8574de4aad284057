package cuda

import "unsafe"

// The CUDA backend reaches the driver and NVRTC through the two interfaces
// below. driver_cgo.go and nvrtc_cgo.go implement them with dlopen'd
// libraries; the !cgo twins only report that there are none; tests substitute
// a fake, so the backend's own logic is tested without a GPU.

// Driver handles, as the driver returns them.
type (
	cuDevice    int32
	cuContext   uintptr
	cuStream    uintptr
	cuEvent     uintptr
	cuModule    uintptr
	cuFunction  uintptr
	cuGraph     uintptr
	cuGraphExec uintptr
	cuGraphNode uintptr
)

// kernelNode is a kernel node of a captured graph as the driver reports it:
// params[i] is the address of the node's copy of parameter i.
type kernelNode struct {
	h      cuGraphNode
	f      cuFunction
	cfg    LaunchConfig
	params unsafe.Pointer // a void** array
}

// deviceAttr is a CUdevice_attribute.
type deviceAttr int32

const (
	attrComputeMajor deviceAttr = 75 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
	attrComputeMinor deviceAttr = 76 // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
)

// Flags passed to the driver.
const (
	streamNonBlocking   = 0x1 // CU_STREAM_NON_BLOCKING
	eventRecordExternal = 0x1 // CU_EVENT_RECORD_EXTERNAL
	eventWaitExternal   = 0x1 // CU_EVENT_WAIT_EXTERNAL
)

// maxKernelArgs bounds a launch's argument list (the C side's array).
const maxKernelArgs = 64

// driver is the CUDA driver API as this package uses it. Every call that
// needs a context takes it and makes it current on the calling thread first,
// inside the same C call (see doc.go). Errors are *Error.
type driver interface {
	driverVersion() (int, error)
	deviceGet(ordinal int) (cuDevice, error)
	deviceName(d cuDevice) (string, error)
	deviceAttribute(d cuDevice, a deviceAttr) (int, error)
	deviceTotalMem(d cuDevice) (int64, error)
	primaryCtxRetain(d cuDevice) (cuContext, error)
	primaryCtxRelease(d cuDevice) error

	ctxSynchronize(c cuContext) error
	memGetInfo(c cuContext) (free, total int64, err error)
	memAlloc(c cuContext, size int64) (uint64, error)
	memFree(c cuContext, p uint64) error
	memHostAlloc(c cuContext, size int64, flags uint32) ([]byte, error)
	memFreeHost(c cuContext, mem []byte) error
	memHostRegister(c cuContext, mem []byte, flags uint32) error
	memHostUnregister(c cuContext, mem []byte) error
	memHostGetDevicePointer(c cuContext, mem []byte) (uint64, error)

	memsetD8Async(c cuContext, p uint64, value byte, n int64, s cuStream) error
	memcpyHtoDAsync(c cuContext, dst uint64, src []byte, s cuStream) error
	memcpyDtoHAsync(c cuContext, dst []byte, src uint64, s cuStream) error
	memcpyDtoDAsync(c cuContext, dst, src uint64, n int64, s cuStream) error

	streamCreate(c cuContext, flags uint32) (cuStream, error)
	streamDestroy(c cuContext, s cuStream) error
	streamQuery(c cuContext, s cuStream) (bool, error)
	streamSynchronize(c cuContext, s cuStream) error
	// streamWaitEvent waits with flags (CU_EVENT_WAIT_*).
	streamWaitEvent(c cuContext, s cuStream, e cuEvent, flags uint32) error

	eventCreate(c cuContext, flags uint32) (cuEvent, error)
	eventDestroy(c cuContext, e cuEvent) error
	eventRecord(c cuContext, e cuEvent, s cuStream) error
	// eventRecordWithFlags records with flags (CU_EVENT_RECORD_*).
	eventRecordWithFlags(c cuContext, e cuEvent, s cuStream, flags uint32) error
	eventQuery(c cuContext, e cuEvent) (bool, error)
	eventSynchronize(c cuContext, e cuEvent) error
	eventElapsedTime(c cuContext, start, end cuEvent) (float32, error)

	moduleLoadData(c cuContext, image []byte) (cuModule, error)
	moduleUnload(c cuContext, m cuModule) error
	moduleGetFunction(c cuContext, m cuModule, name string) (cuFunction, error)
	launchKernel(c cuContext, f cuFunction, cfg LaunchConfig, s cuStream, params []uint64) error

	// The graph calls are optional: a driver without them fails them with
	// ErrNotSupported. Capture is always in global mode (see cuda_graph.go).
	streamBeginCapture(c cuContext, s cuStream) error
	streamEndCapture(c cuContext, s cuStream) (cuGraph, error)
	graphDestroy(c cuContext, g cuGraph) error
	// graphKernelNodes lists the kernel nodes of g, in no particular order.
	graphKernelNodes(c cuContext, g cuGraph) ([]kernelNode, error)
	graphInstantiate(c cuContext, g cuGraph) (cuGraphExec, error)
	graphExecDestroy(c cuContext, x cuGraphExec) error
	graphLaunch(c cuContext, x cuGraphExec, s cuStream) error
	graphExecKernelNodeSetParams(c cuContext, x cuGraphExec, n cuGraphNode, f cuFunction, cfg LaunchConfig, params []uint64) error
}

// compiler is NVRTC as this package uses it.
type compiler interface {
	// version is NVRTC's version as 1000*major + 10*minor.
	version() int
	// archs are the SM architectures it compiles for, e.g. 75, 80, 90.
	archs() []int
	// library is the file it was loaded from, e.g. "libnvrtc.so.11.2".
	library() string
	// compile compiles source with options (which name the architecture) and
	// returns the PTX (NUL-terminated, as the driver loads it), the CUBIN when
	// cubin is set (the architecture must then be a real one, sm_XX) and the
	// compiler's log. A rejected program is an error with the log beside it.
	compile(name, source string, options []string, cubin bool) (ptx, image []byte, log string, err error)
}
