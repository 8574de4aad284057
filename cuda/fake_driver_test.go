package cuda

import (
	"fmt"
	"strings"
	"sync"
	"unsafe"
)

// fakeDriver stands in for the CUDA driver in tests of the CUDA backend's own
// logic: memory is Go memory at synthetic addresses, work runs when queued,
// and kernels are only recorded. Every call on a context checks that it got
// the device's primary context, as the real driver would fail with
// CUDA_ERROR_INVALID_CONTEXT. fail makes a named call return a result.
type fakeDriver struct {
	mu         sync.Mutex
	devices    int
	ctx        cuContext
	retained   int
	next       uint64
	mem        map[uint64][]byte // device allocations by address
	pinned     map[uintptr][]byte
	registered map[uintptr][]byte
	streams    map[cuStream]bool
	events     map[cuEvent]int // the record count when last recorded (0: never)
	records    int
	untimed    map[cuEvent]bool // created with CU_EVENT_DISABLE_TIMING
	modules    map[cuModule]string
	functions  map[cuFunction]string
	handles    uintptr
	launches   []fakeLaunch
	fail       map[string]Result
	calls      map[string]int
	capturing  map[cuStream]*fakeGraph
	graphs     map[cuGraph]*fakeGraph
	execs      map[cuGraphExec]*fakeGraph
}

// fakeGraph is a captured graph, or an instantiated copy: its operations in
// capture order, each either a kernel node or work to redo.
type fakeGraph struct{ ops []fakeOp }

type fakeOp struct {
	kernel *fakeKernelNode
	run    func() // called with the driver locked
}

type fakeKernelNode struct {
	h      cuGraphNode
	name   string
	f      cuFunction
	cfg    LaunchConfig
	params []uint64
	ptrs   []unsafe.Pointer // &params[i], as the driver hands them out
}

func newKernelNode(h cuGraphNode, name string, f cuFunction, cfg LaunchConfig, params []uint64) *fakeKernelNode {
	n := &fakeKernelNode{h: h, name: name, f: f, cfg: cfg, params: append([]uint64(nil), params...)}
	for i := range n.params {
		n.ptrs = append(n.ptrs, unsafe.Pointer(&n.params[i]))
	}
	return n
}

// queue runs work now, or records it when s captures.
func (f *fakeDriver) queue(s cuStream, work func()) {
	if g := f.capturing[s]; g != nil {
		g.ops = append(g.ops, fakeOp{run: work})
		return
	}
	work()
}

type fakeLaunch struct {
	name   string
	cfg    LaunchConfig
	params []uint64
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{
		devices:    1,
		ctx:        0xc0,
		next:       0x7000_0000,
		mem:        make(map[uint64][]byte),
		pinned:     make(map[uintptr][]byte),
		registered: make(map[uintptr][]byte),
		streams:    make(map[cuStream]bool),
		events:     make(map[cuEvent]int),
		untimed:    make(map[cuEvent]bool),
		modules:    make(map[cuModule]string),
		functions:  make(map[cuFunction]string),
		fail:       make(map[string]Result),
		calls:      make(map[string]int),
		capturing:  make(map[cuStream]*fakeGraph),
		graphs:     make(map[cuGraph]*fakeGraph),
		execs:      make(map[cuGraphExec]*fakeGraph),
	}
}

// enter counts a call and returns the result it is to fail with, if any;
// c is checked against the primary context unless noContext.
func (f *fakeDriver) enter(call string, c cuContext, noContext bool) error {
	f.calls[call]++
	if r, ok := f.fail[call]; ok {
		return resultError(call, r, "", "")
	}
	if !noContext && (c != f.ctx || f.retained == 0) {
		return resultError(call, resultInvalidContext, "", "")
	}
	return nil
}

func (f *fakeDriver) handle() uintptr {
	f.handles++
	return 0x1000 + f.handles
}

// locate finds the allocation holding [p, p+n).
func (f *fakeDriver) locate(p uint64, n int64) ([]byte, error) {
	for base, b := range f.mem {
		if p >= base && p+uint64(n) <= base+uint64(len(b)) {
			return b[p-base : p-base+uint64(n)], nil
		}
	}
	return nil, resultError("locate", resultInvalidValue, "", "")
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func (f *fakeDriver) driverVersion() (int, error) { return 13000, nil }

func (f *fakeDriver) deviceGet(ordinal int) (cuDevice, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuDeviceGet", 0, true); err != nil {
		return 0, err
	}
	if ordinal < 0 || ordinal >= f.devices {
		return 0, resultError("cuDeviceGet", resultInvalidDevice, "", "")
	}
	return cuDevice(ordinal), nil
}

func (f *fakeDriver) deviceName(cuDevice) (string, error) { return "Fake GPU", nil }

func (f *fakeDriver) deviceAttribute(_ cuDevice, a deviceAttr) (int, error) {
	switch a {
	case attrComputeMajor:
		return 9, nil
	case attrComputeMinor:
		return 0, nil
	}
	return 0, resultError("cuDeviceGetAttribute", resultInvalidValue, "", "")
}

func (f *fakeDriver) deviceTotalMem(cuDevice) (int64, error) { return 1 << 30, nil }

func (f *fakeDriver) primaryCtxRetain(cuDevice) (cuContext, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuDevicePrimaryCtxRetain", 0, true); err != nil {
		return 0, err
	}
	f.retained++
	return f.ctx, nil
}

func (f *fakeDriver) primaryCtxRelease(cuDevice) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retained == 0 {
		return resultError("cuDevicePrimaryCtxRelease", resultInvalidContext, "", "")
	}
	f.retained--
	return nil
}

func (f *fakeDriver) ctxSynchronize(c cuContext) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enter("cuCtxSynchronize", c, false)
}

func (f *fakeDriver) memGetInfo(c cuContext) (free, total int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemGetInfo_v2", c, false); err != nil {
		return 0, 0, err
	}
	used := int64(0)
	for _, b := range f.mem {
		used += int64(len(b))
	}
	return 1<<30 - used, 1 << 30, nil
}

func (f *fakeDriver) memAlloc(c cuContext, size int64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemAlloc_v2", c, false); err != nil {
		return 0, err
	}
	p := f.next
	f.next += uint64(size+511) &^ 511
	f.mem[p] = make([]byte, size)
	return p, nil
}

func (f *fakeDriver) memFree(c cuContext, p uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemFree_v2", c, false); err != nil {
		return err
	}
	if _, ok := f.mem[p]; !ok {
		return resultError("cuMemFree_v2", resultInvalidValue, "", "")
	}
	delete(f.mem, p)
	return nil
}

func (f *fakeDriver) memHostAlloc(c cuContext, size int64, _ uint32) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemHostAlloc", c, false); err != nil {
		return nil, err
	}
	b := make([]byte, size)
	f.pinned[addrOf(b)] = b
	return b, nil
}

func (f *fakeDriver) memFreeHost(c cuContext, mem []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemFreeHost", c, false); err != nil {
		return err
	}
	if _, ok := f.pinned[addrOf(mem)]; !ok {
		return resultError("cuMemFreeHost", resultInvalidValue, "", "")
	}
	delete(f.pinned, addrOf(mem))
	return nil
}

func (f *fakeDriver) memHostRegister(c cuContext, mem []byte, _ uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemHostRegister_v2", c, false); err != nil {
		return err
	}
	if _, ok := f.registered[addrOf(mem)]; ok {
		return resultError("cuMemHostRegister_v2", resultAlreadyRegistered, "", "")
	}
	f.registered[addrOf(mem)] = mem
	return nil
}

func (f *fakeDriver) memHostUnregister(c cuContext, mem []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemHostUnregister", c, false); err != nil {
		return err
	}
	if _, ok := f.registered[addrOf(mem)]; !ok {
		return resultError("cuMemHostUnregister", resultNotRegistered, "", "")
	}
	delete(f.registered, addrOf(mem))
	return nil
}

func (f *fakeDriver) memHostGetDevicePointer(c cuContext, mem []byte) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuMemHostGetDevicePointer_v2", c, false); err != nil {
		return 0, err
	}
	return uint64(addrOf(mem)), nil
}

func (f *fakeDriver) stream(call string, c cuContext, s cuStream) error {
	if err := f.enter(call, c, false); err != nil {
		return err
	}
	if !f.streams[s] {
		return resultError(call, resultInvalidHandle, "", "")
	}
	return nil
}

func (f *fakeDriver) memsetD8Async(c cuContext, p uint64, value byte, n int64, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuMemsetD8Async", c, s); err != nil {
		return err
	}
	b, err := f.locate(p, n)
	if err != nil {
		return err
	}
	f.queue(s, func() {
		for i := range b {
			b[i] = value
		}
	})
	return nil
}

func (f *fakeDriver) memcpyHtoDAsync(c cuContext, dst uint64, src []byte, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuMemcpyHtoDAsync_v2", c, s); err != nil {
		return err
	}
	b, err := f.locate(dst, int64(len(src)))
	if err != nil {
		return err
	}
	f.queue(s, func() { copy(b, src) })
	return nil
}

func (f *fakeDriver) memcpyDtoHAsync(c cuContext, dst []byte, src uint64, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuMemcpyDtoHAsync_v2", c, s); err != nil {
		return err
	}
	b, err := f.locate(src, int64(len(dst)))
	if err != nil {
		return err
	}
	f.queue(s, func() { copy(dst, b) })
	return nil
}

func (f *fakeDriver) memcpyDtoDAsync(c cuContext, dst, src uint64, n int64, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuMemcpyDtoDAsync_v2", c, s); err != nil {
		return err
	}
	d, err := f.locate(dst, n)
	if err != nil {
		return err
	}
	sb, err := f.locate(src, n)
	if err != nil {
		return err
	}
	f.queue(s, func() { copy(d, sb) })
	return nil
}

func (f *fakeDriver) streamCreate(c cuContext, _ uint32) (cuStream, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuStreamCreate", c, false); err != nil {
		return 0, err
	}
	s := cuStream(f.handle())
	f.streams[s] = true
	return s, nil
}

func (f *fakeDriver) streamDestroy(c cuContext, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuStreamDestroy_v2", c, s); err != nil {
		return err
	}
	delete(f.streams, s)
	return nil
}

func (f *fakeDriver) streamQuery(c cuContext, s cuStream) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return true, f.stream("cuStreamQuery", c, s)
}

func (f *fakeDriver) streamSynchronize(c cuContext, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stream("cuStreamSynchronize", c, s)
}

func (f *fakeDriver) event(call string, c cuContext, e cuEvent) error {
	if err := f.enter(call, c, false); err != nil {
		return err
	}
	if _, ok := f.events[e]; !ok {
		return resultError(call, resultInvalidHandle, "", "")
	}
	return nil
}

func (f *fakeDriver) streamWaitEvent(c cuContext, s cuStream, e cuEvent, flags uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuStreamWaitEvent", c, s); err != nil {
		return err
	}
	return f.event("cuStreamWaitEvent", c, e)
}

func (f *fakeDriver) eventCreate(c cuContext, flags uint32) (cuEvent, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuEventCreate", c, false); err != nil {
		return 0, err
	}
	e := cuEvent(f.handle())
	f.events[e] = 0
	f.untimed[e] = flags&uint32(EventDisableTiming) != 0
	return e, nil
}

func (f *fakeDriver) eventDestroy(c cuContext, e cuEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.event("cuEventDestroy_v2", c, e); err != nil {
		return err
	}
	delete(f.events, e)
	return nil
}

func (f *fakeDriver) eventRecord(c cuContext, e cuEvent, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuEventRecord", c, s); err != nil {
		return err
	}
	if err := f.event("cuEventRecord", c, e); err != nil {
		return err
	}
	if f.capturing[s] != nil {
		// Without CU_EVENT_RECORD_EXTERNAL, a record in a capture is no node.
		return resultError("cuEventRecord", resultCaptureUnsupported, "", "")
	}
	f.records++
	f.events[e] = f.records
	return nil
}

func (f *fakeDriver) eventRecordWithFlags(c cuContext, e cuEvent, s cuStream, flags uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuEventRecordWithFlags", c, s); err != nil {
		return err
	}
	if err := f.event("cuEventRecordWithFlags", c, e); err != nil {
		return err
	}
	f.queue(s, func() {
		f.records++
		f.events[e] = f.records
	})
	return nil
}

func (f *fakeDriver) eventQuery(c cuContext, e cuEvent) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return true, f.event("cuEventQuery", c, e)
}

func (f *fakeDriver) eventSynchronize(c cuContext, e cuEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.event("cuEventSynchronize", c, e)
}

// eventElapsedTime reports 1.5 ms per record between the two events.
func (f *fakeDriver) eventElapsedTime(c cuContext, start, end cuEvent) (float32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.event("cuEventElapsedTime", c, start); err != nil {
		return 0, err
	}
	if err := f.event("cuEventElapsedTime", c, end); err != nil {
		return 0, err
	}
	if f.events[start] == 0 || f.events[end] == 0 || f.untimed[start] || f.untimed[end] {
		return 0, resultError("cuEventElapsedTime", resultInvalidHandle, "", "")
	}
	return 1.5 * float32(f.events[end]-f.events[start]), nil
}

func (f *fakeDriver) moduleLoadData(c cuContext, image []byte) (cuModule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuModuleLoadData", c, false); err != nil {
		return 0, err
	}
	if len(image) == 0 {
		return 0, resultError("cuModuleLoadData", resultInvalidImage, "", "")
	}
	m := cuModule(f.handle())
	f.modules[m] = string(image)
	return m, nil
}

func (f *fakeDriver) moduleUnload(c cuContext, m cuModule) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuModuleUnload", c, false); err != nil {
		return err
	}
	if _, ok := f.modules[m]; !ok {
		return resultError("cuModuleUnload", resultInvalidHandle, "", "")
	}
	delete(f.modules, m)
	return nil
}

// moduleGetFunction finds name if the image (the fake compiler's output)
// mentions it.
func (f *fakeDriver) moduleGetFunction(c cuContext, m cuModule, name string) (cuFunction, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuModuleGetFunction", c, false); err != nil {
		return 0, err
	}
	image, ok := f.modules[m]
	if !ok {
		return 0, resultError("cuModuleGetFunction", resultInvalidHandle, "", "")
	}
	if !declaresKernel(image, name) {
		return 0, resultError("cuModuleGetFunction", resultNotFound, "", "")
	}
	fn := cuFunction(f.handle())
	f.functions[fn] = name
	return fn, nil
}

func (f *fakeDriver) launchKernel(c cuContext, fn cuFunction, cfg LaunchConfig, s cuStream, params []uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuLaunchKernel", c, s); err != nil {
		return err
	}
	name, ok := f.functions[fn]
	if !ok {
		return resultError("cuLaunchKernel", resultInvalidHandle, "", "")
	}
	if g := f.capturing[s]; g != nil {
		g.ops = append(g.ops, fakeOp{kernel: newKernelNode(cuGraphNode(f.handle()), name, fn, cfg, params)})
		return nil
	}
	f.launches = append(f.launches, fakeLaunch{name: name, cfg: cfg, params: append([]uint64(nil), params...)})
	return nil
}

func (f *fakeDriver) streamBeginCapture(c cuContext, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuStreamBeginCapture_v2", c, s); err != nil {
		return err
	}
	if f.capturing[s] != nil {
		return resultError("cuStreamBeginCapture_v2", resultCaptureUnmatched, "", "")
	}
	f.capturing[s] = &fakeGraph{}
	return nil
}

func (f *fakeDriver) streamEndCapture(c cuContext, s cuStream) (cuGraph, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuStreamEndCapture", c, s); err != nil {
		return 0, err
	}
	g := f.capturing[s]
	if g == nil {
		return 0, resultError("cuStreamEndCapture", resultCaptureUnmatched, "", "")
	}
	delete(f.capturing, s)
	h := cuGraph(f.handle())
	f.graphs[h] = g
	return h, nil
}

func (f *fakeDriver) graphDestroy(c cuContext, g cuGraph) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuGraphDestroy", c, false); err != nil {
		return err
	}
	if f.graphs[g] == nil {
		return resultError("cuGraphDestroy", resultInvalidValue, "", "")
	}
	delete(f.graphs, g)
	return nil
}

// graphKernelNodes lists the kernel nodes last first, so that the backend
// cannot rely on the order.
func (f *fakeDriver) graphKernelNodes(c cuContext, g cuGraph) ([]kernelNode, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuGraphGetNodes", c, false); err != nil {
		return nil, err
	}
	fg := f.graphs[g]
	if fg == nil {
		return nil, resultError("cuGraphGetNodes", resultInvalidValue, "", "")
	}
	var nodes []kernelNode
	for i := len(fg.ops) - 1; i >= 0; i-- {
		if n := fg.ops[i].kernel; n != nil {
			var params unsafe.Pointer
			if len(n.ptrs) > 0 {
				params = unsafe.Pointer(&n.ptrs[0])
			}
			nodes = append(nodes, kernelNode{h: n.h, f: n.f, cfg: n.cfg, params: params})
		}
	}
	return nodes, nil
}

func (f *fakeDriver) graphInstantiate(c cuContext, g cuGraph) (cuGraphExec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuGraphInstantiateWithFlags", c, false); err != nil {
		return 0, err
	}
	fg := f.graphs[g]
	if fg == nil {
		return 0, resultError("cuGraphInstantiateWithFlags", resultInvalidValue, "", "")
	}
	x := &fakeGraph{}
	for _, op := range fg.ops {
		if n := op.kernel; n != nil {
			op.kernel = newKernelNode(n.h, n.name, n.f, n.cfg, n.params)
		}
		x.ops = append(x.ops, op)
	}
	h := cuGraphExec(f.handle())
	f.execs[h] = x
	return h, nil
}

func (f *fakeDriver) graphExecDestroy(c cuContext, x cuGraphExec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuGraphExecDestroy", c, false); err != nil {
		return err
	}
	if f.execs[x] == nil {
		return resultError("cuGraphExecDestroy", resultInvalidValue, "", "")
	}
	delete(f.execs, x)
	return nil
}

// graphLaunch replays the graph: its kernels are recorded as launches.
func (f *fakeDriver) graphLaunch(c cuContext, x cuGraphExec, s cuStream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stream("cuGraphLaunch", c, s); err != nil {
		return err
	}
	fx := f.execs[x]
	if fx == nil {
		return resultError("cuGraphLaunch", resultInvalidValue, "", "")
	}
	for _, op := range fx.ops {
		if n := op.kernel; n != nil {
			f.launches = append(f.launches, fakeLaunch{name: n.name, cfg: n.cfg, params: append([]uint64(nil), n.params...)})
		} else {
			op.run()
		}
	}
	return nil
}

func (f *fakeDriver) graphExecKernelNodeSetParams(c cuContext, x cuGraphExec, node cuGraphNode, fn cuFunction, cfg LaunchConfig, params []uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("cuGraphExecKernelNodeSetParams", c, false); err != nil {
		return err
	}
	fx := f.execs[x]
	if fx == nil {
		return resultError("cuGraphExecKernelNodeSetParams", resultInvalidValue, "", "")
	}
	for i, op := range fx.ops {
		if n := op.kernel; n != nil && n.h == node {
			if n.f != fn || n.cfg != cfg || len(n.params) != len(params) {
				return resultError("cuGraphExecKernelNodeSetParams", resultInvalidValue, "", "")
			}
			fx.ops[i].kernel = newKernelNode(n.h, n.name, n.f, n.cfg, params)
			return nil
		}
	}
	return resultError("cuGraphExecKernelNodeSetParams", resultInvalidValue, "", "")
}

// leaks describes what the fake still holds.
func (f *fakeDriver) leaks() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.mem)+len(f.pinned)+len(f.registered)+len(f.streams)+len(f.events)+len(f.modules)+f.retained+
		len(f.capturing)+len(f.graphs)+len(f.execs) == 0 {
		return ""
	}
	return fmt.Sprintf("mem %d, pinned %d, registered %d, streams %d, events %d, modules %d, contexts %d, captures %d, graphs %d, execs %d",
		len(f.mem), len(f.pinned), len(f.registered), len(f.streams), len(f.events), len(f.modules), f.retained,
		len(f.capturing), len(f.graphs), len(f.execs))
}

// fakeCompiler stands in for NVRTC: its image is the source itself, or an
// error with a log when the source contains "#error".
type fakeCompiler struct {
	mu       sync.Mutex
	supports []int
	compiles int
	options  [][]string
}

func (c *fakeCompiler) version() int    { return 13000 }
func (c *fakeCompiler) archs() []int    { return c.supports }
func (c *fakeCompiler) library() string { return "fake" }

func (c *fakeCompiler) compile(name, source string, options []string, cubin bool) (ptx, image []byte, log string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compiles++
	c.options = append(c.options, options)
	if i := strings.Index(source, "#error"); i >= 0 {
		return nil, nil, name + "(1): error: " + source[i:], fmt.Errorf("cuda: nvrtcCompileProgram: NVRTC_ERROR_COMPILATION (6)")
	}
	if cubin {
		image = []byte(source)
	}
	return []byte(source), image, "", nil
}
