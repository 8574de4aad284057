package synth

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"math"
	"math/bits"
	"sync"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/experts/quant"
)

// synthChunkBytes is the unit of parallel generation: a tensor's data is cut
// into chunks of this many bytes (rounded down to whole blocks), and chunk i
// is generated from its own random stream, so the bytes depend only on the
// seed, never on the number of workers.
const synthChunkBytes = 2 << 20

// synthRand is wyrand: a 64-bit generator, fast and good enough for test
// weights.
type synthRand struct{ s uint64 }

func (r *synthRand) next() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// uniform returns a float64 in [0, 1).
func (r *synthRand) uniform() float64 { return float64(r.next()>>11) * 0x1p-53 }

// normal returns an approximately standard normal value: the sum of four
// 16-bit uniforms (Irwin–Hall), rescaled.
func (r *synthRand) normal() float64 {
	x := r.next()
	sum := float64(x&0xffff) + float64(x>>16&0xffff) + float64(x>>32&0xffff) + float64(x>>48)
	return (sum/65536 - 2) * math.Sqrt(3)
}

// fill fills p with random bytes.
func (r *synthRand) fill(p []byte) {
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, r.next())
		p = p[8:]
	}
	if len(p) > 0 {
		var last [8]byte
		binary.LittleEndian.PutUint64(last[:], r.next())
		copy(p, last[:])
	}
}

// synthMix derives an independent seed from a seed and a number (splitmix64).
func synthMix(seed, n uint64) uint64 {
	z := seed ^ (n+1)*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func synthHashString(s string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	return h.Sum64()
}

// synthQuantizer generates blocks of a quantized type whose dequantized
// values are roughly uniform with mean ~0 and standard deviation sigma: the
// quants are random bytes, and each block's scales come from one of 256
// precomputed headers chosen by a random byte.
type synthQuantizer struct {
	blockBytes int
	headerAt   int      // offset of the header in a block
	headers    [][]byte // the header variants
}

// synthSubScale draws a 6-bit sub-block scale in [16, 31]; synthSubScaleRMS
// is the root mean square of that distribution.
func synthSubScale(r *synthRand) byte { return byte(16 + r.next()%16) }

var synthSubScaleRMS = math.Sqrt(23.5*23.5 + (16*16-1)/12.0)

// synthUniformStd is the standard deviation of an integer uniform on n values.
func synthUniformStd(n float64) float64 { return math.Sqrt((n*n - 1) / 12) }

func newSynthQuantizer(t experts.Type, sigma float64, seed uint64) *synthQuantizer {
	r := synthRand{s: seed}
	q := &synthQuantizer{blockBytes: t.BlockBytes()}
	half := func(b []byte, v float64) { binary.LittleEndian.PutUint16(b, quant.Float32ToFloat16(float32(v))) }
	jitter := func() float64 { return 0.9 + 0.2*r.uniform() } // per-variant variation of d
	for range 256 {
		var h []byte
		switch t {
		case experts.TypeQ4_K, experts.TypeQ5_K:
			// d, dmin, 12 bytes packing eight 6-bit scales and mins; value =
			// d*scale*q - dmin*min with min = scale and dmin = d*mean(q).
			levels := 16.0
			if t == experts.TypeQ5_K {
				levels = 32
			}
			h = make([]byte, 16)
			d := sigma / (synthUniformStd(levels) * synthSubScaleRMS) * jitter()
			half(h[0:], d)
			half(h[2:], d*(levels-1)/2)
			var sc [8]byte
			for j := range sc {
				sc[j] = synthSubScale(&r)
			}
			packed := h[4:16]
			for j := range 4 {
				packed[j] = sc[j] | sc[j+4]>>4<<6
				packed[j+4] = sc[j] | sc[j+4]>>4<<6 // mins equal the scales
				packed[j+8] = sc[j+4]&0xf | (sc[j+4]&0xf)<<4
			}
		case experts.TypeQ6_K:
			// After ql[128] and qh[64]: sixteen int8 scales and d; value =
			// d*scale*(q-32).
			q.headerAt = 192
			h = make([]byte, 18)
			for j := range 16 {
				h[j] = synthSubScale(&r)
			}
			half(h[16:], sigma/(synthUniformStd(64)*synthSubScaleRMS)*jitter())
		case experts.TypeQ8_0:
			// d then 32 int8 quants.
			h = make([]byte, 2)
			half(h, sigma/synthUniformStd(256)*jitter())
		default:
			return nil
		}
		q.headers = append(q.headers, h)
	}
	return q
}

// fill fills dst, a whole number of blocks, from r.
func (q *synthQuantizer) fill(dst []byte, r *synthRand) {
	r.fill(dst)
	for off := 0; off+q.blockBytes <= len(dst); off += q.blockBytes {
		h := dst[off+q.headerAt:]
		copy(h, q.headers[h[0]])
	}
}

// synthF32Value draws one F32 element of a tensor.
func synthF32Value(t *synthTensor, r *synthRand) float32 {
	switch t.kind {
	case synthNorm:
		return float32(1 + 0.1*r.normal())
	case synthSSMA:
		return float32(-1 - 15*r.uniform())
	case synthSSMDtBias:
		dt := math.Exp(math.Log(1e-3) + r.uniform()*(math.Log(1e-1)-math.Log(1e-3)))
		return float32(math.Log(math.Expm1(dt))) // softplus⁻¹(dt)
	}
	return float32(t.sigma * r.normal())
}

// tensorBytes is the storage size of a planned tensor (whose shape the
// plan keeps within what Writer.AddTensor accepts).
func tensorBytes(t synthTensor) int64 {
	row, _ := t.typ.RowBytes(t.dims[0])
	size := int64(row)
	for _, d := range t.dims[1:] {
		size *= int64(d)
	}
	return size
}

// synthFiller returns the TensorFiller of a planned tensor.
func synthFiller(t synthTensor, seed uint64, workers int) experts.TensorFiller {
	size := tensorBytes(t)
	blockBytes := int64(t.typ.BlockBytes())
	chunk := max(synthChunkBytes/blockBytes, 1) * blockBytes
	var gen func(buf []byte, r *synthRand)
	if t.typ == experts.TypeF32 {
		gen = func(buf []byte, r *synthRand) {
			for i := 0; i+4 <= len(buf); i += 4 {
				binary.LittleEndian.PutUint32(buf[i:], math.Float32bits(synthF32Value(&t, r)))
			}
		}
	} else {
		q := newSynthQuantizer(t.typ, t.sigma, synthMix(seed, math.MaxUint64))
		if q == nil {
			return func(io.Writer) error { return experts.ErrUnsupportedType }
		}
		gen = q.fill
	}
	return func(w io.Writer) error {
		return synthStream(w, size, chunk, workers, func(buf []byte, index int64) {
			r := synthRand{s: synthMix(seed, uint64(index))}
			gen(buf, &r)
		})
	}
}

// synthBuffers recycles chunk buffers across tensors: a full-size model has
// hundreds of tensors, and fresh buffers for each would churn gigabytes
// through the garbage collector and inflate the heap.
var synthBuffers = sync.Pool{New: func() any { return new([]byte) }}

// synthBuffer returns a pooled buffer of n bytes; synthRelease gives it back.
func synthBuffer(n int64) *[]byte {
	b := synthBuffers.Get().(*[]byte)
	if int64(cap(*b)) < n {
		*b = make([]byte, n, max(n, synthChunkBytes))
	}
	*b = (*b)[:n]
	return b
}

func synthRelease(b *[]byte) { synthBuffers.Put(b) }

// synthStream writes size bytes to w in chunks of the given size that gen
// fills, generating up to 2×workers chunks ahead on worker goroutines and
// writing them in order. It returns the first write error.
func synthStream(w io.Writer, size, chunk int64, workers int, gen func(buf []byte, index int64)) error {
	count := (size + chunk - 1) / chunk
	chunkLen := func(i int64) int64 { return min(chunk, size-i*chunk) }
	if workers <= 1 || count <= 1 {
		buf := synthBuffer(min(chunk, size))
		defer synthRelease(buf)
		for i := range count {
			b := (*buf)[:chunkLen(i)]
			gen(b, i)
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	type job struct {
		index int64
		buf   *[]byte
		done  chan struct{}
	}
	depth := int(min(int64(2*workers), count))
	free := make(chan *[]byte, depth)
	for range depth {
		free <- synthBuffer(chunk)
	}
	jobs := make(chan *job)
	inOrder := make(chan *job, depth)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				gen(*j.buf, j.index)
				close(j.done)
			}
		})
	}
	wg.Go(func() {
		defer close(jobs)
		defer close(inOrder)
		for i := range count {
			var buf *[]byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			*buf = (*buf)[:chunkLen(i)]
			j := &job{index: i, buf: buf, done: make(chan struct{})}
			inOrder <- j // never blocks: at most depth jobs exist
			select {
			case jobs <- j:
			case <-stop:
				return
			}
		}
	})
	var err error
	for j := range inOrder {
		if err != nil {
			continue // draining after a failure; j may never be generated
		}
		<-j.done
		if _, err = w.Write(*j.buf); err != nil {
			close(stop)
			continue
		}
		free <- j.buf
	}
	wg.Wait()
	if err == nil {
		// Every buffer is back; after a failure the ones still held by
		// jobs are left to the garbage collector.
		for range depth {
			synthRelease(<-free)
		}
	}
	return err
}
