package cuda

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rotary-moe/rotary/internal/atomicfile"
)

// kernelCache keeps compiled images by key, in memory and, when it has a
// directory, on disk. A disk entry is the image followed by its SHA-256, so a
// torn or damaged file reads as a miss rather than a bad module.
type kernelCache struct {
	dir string // "" keeps the cache in memory only

	mu     sync.Mutex
	images map[string][]byte
}

func newKernelCache(dir string) *kernelCache {
	return &kernelCache{dir: dir, images: make(map[string][]byte)}
}

// cacheDir is the disk cache's directory under cfg ("" for none).
func cacheDir(cfg config) (string, error) {
	if cfg.cacheDirSet {
		return cfg.cacheDir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cuda: kernel cache: %w", err)
	}
	return filepath.Join(base, "rotary", "cuda", "kernels"), nil
}

// cacheKey names what an image depends on: the program, the target
// architecture and the driver that will load it.
func cacheKey(p *Program, arch string, driverVersion int) string {
	h := sha256.New()
	field := func(s string) {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(p.Name)
	field(p.Source)
	field(fmt.Sprint(len(p.Options)))
	for _, o := range p.Options {
		field(o)
	}
	field(arch)
	field(fmt.Sprint(driverVersion))
	return hex.EncodeToString(h.Sum(nil))
}

func (c *kernelCache) path(key string) string { return filepath.Join(c.dir, key+".bin") }

// get returns the image under key, from memory or disk.
func (c *kernelCache) get(key string) ([]byte, bool) {
	c.mu.Lock()
	image, ok := c.images[key]
	c.mu.Unlock()
	if ok || c.dir == "" {
		return image, ok
	}
	data, err := os.ReadFile(c.path(key))
	if err != nil || len(data) < sha256.Size {
		return nil, false
	}
	image, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(image); !bytes.Equal(got[:], sum) {
		return nil, false
	}
	c.mu.Lock()
	c.images[key] = image
	c.mu.Unlock()
	return image, true
}

// put stores image under key in memory, and on disk through atomicfile
// (a reader never sees a part of it). A disk failure leaves the memory
// entry and is returned for the log.
func (c *kernelCache) put(key string, image []byte) error {
	c.mu.Lock()
	c.images[key] = image
	c.mu.Unlock()
	if c.dir == "" {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	sum := sha256.Sum256(image)
	return atomicfile.Write(c.path(key), func(w io.Writer) error {
		if _, err := w.Write(image); err != nil {
			return err
		}
		_, err := w.Write(sum[:])
		return err
	})
}

// drop forgets key, after its image failed to load.
func (c *kernelCache) drop(key string) {
	c.mu.Lock()
	delete(c.images, key)
	c.mu.Unlock()
	if c.dir != "" {
		os.Remove(c.path(key))
	}
}

// chooseTarget picks what NVRTC compiles for a device of compute capability
// major.minor: a CUBIN for the device itself when NVRTC knows its
// architecture, otherwise PTX for the newest architecture below it that NVRTC
// knows, which the driver compiles on loading.
func chooseTarget(major, minor int, supported []int) (arch string, ptx bool, err error) {
	cc := major*10 + minor
	if slices.Contains(supported, cc) {
		return fmt.Sprintf("sm_%d", cc), false, nil
	}
	best := -1
	for _, a := range supported {
		if a <= cc && a > best {
			best = a
		}
	}
	if best < 0 {
		return "", false, fmt.Errorf("cuda: NVRTC compiles for %v, none at or below the device's sm_%d: %w", supported, cc, ErrNoNVRTC)
	}
	return fmt.Sprintf("compute_%d", best), true, nil
}

// Load implements Device: the image comes from the cache when the program
// was compiled for this architecture and driver before, otherwise from NVRTC.
func (d *cudaDevice) Load(ctx context.Context, p *Program) (Module, error) {
	if p == nil || p.Source == "" {
		return nil, fmt.Errorf("cuda: Load: program without source: %w", ErrInvalidValue)
	}
	own := fmt.Sprintf("sm_%d%d", d.info.ComputeMajor, d.info.ComputeMinor)
	key := cacheKey(p, own, d.info.DriverVersion)
	image, cached := d.kernels.get(key)
	for {
		if !cached {
			var err error
			if image, key, err = d.compile(ctx, p); err != nil {
				return nil, err
			}
		}
		m, err := d.loadImage(p.Name, image)
		if err == nil || !cached {
			return m, err
		}
		// A cached image the driver rejects (a driver update the key did
		// not capture, say) is compiled afresh, once.
		d.log.Warn("cuda: cached kernel image rejected; compiling", slog.String("program", p.Name), slog.Any("err", err))
		d.kernels.drop(key)
		cached = false
	}
}

// compile compiles p with NVRTC, unless the cache has it for the
// architecture chosen, and returns the image and its cache key.
func (d *cudaDevice) compile(ctx context.Context, p *Program) (image []byte, key string, err error) {
	comp, err := d.compiler()
	if err != nil {
		return nil, "", err
	}
	arch, ptx, err := chooseTarget(d.info.ComputeMajor, d.info.ComputeMinor, comp.archs())
	if err != nil {
		return nil, "", err
	}
	key = cacheKey(p, arch, d.info.DriverVersion)
	if image, ok := d.kernels.get(key); ok {
		return image, key, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	start := time.Now()
	out, err := compileProgram(comp, p, arch, !ptx)
	if err != nil {
		return nil, "", err
	}
	image = out.CUBIN
	if ptx {
		image = out.PTX
	}
	d.log.Debug("cuda: compiled", slog.String("program", p.Name), slog.String("arch", arch), slog.Int("nvrtc", comp.version()),
		slog.Duration("took", time.Since(start)), slog.Int("bytes", len(image)), slog.String("log", out.Log))
	if err := d.kernels.put(key, image); err != nil {
		d.log.Warn("cuda: kernel disk cache", slog.String("dir", d.kernels.dir), slog.Any("err", err))
	}
	return image, key, nil
}

// loadImage loads a compiled image as a module.
func (d *cudaDevice) loadImage(name string, image []byte) (Module, error) {
	if err := d.enter("Load"); err != nil {
		return nil, err
	}
	defer d.leave()
	h, err := d.drv.moduleLoadData(d.ctx, image)
	if err != nil {
		return nil, fmt.Errorf("cuda: Load %s: %w", name, err)
	}
	m := &cudaModule{dev: d, h: h, name: name, kernels: make(map[string]*cudaKernel)}
	d.mu.Lock()
	d.modules[m] = struct{}{}
	d.mu.Unlock()
	return m, nil
}
