package chart

import (
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"path/filepath"
	"strings"
)

var (
	// ErrEmpty: the profile has no routed selection to draw (a trace without
	// tokens, or of dense layers only).
	ErrEmpty = errors.New("chart: profile has no routed selections")
	// ErrFormat: a file name asks for an image format this package does not
	// write.
	ErrFormat = errors.New("chart: unsupported image format")
	// ErrInvalid: an option's value is none of its constants (an Order,
	// Scale or Format out of range).
	ErrInvalid = errors.New("chart: invalid option")
)

// Format is the encoding of a chart file.
type Format int

const (
	// PNG is lossless, the default: the cells and text stay sharp.
	PNG Format = iota
	// JPEG at quality 95, for tools that want it.
	JPEG
)

func (f Format) String() string {
	if f == JPEG {
		return "JPEG"
	}
	return "PNG"
}

// FormatOf returns the format a file name asks for by its extension: .png
// for PNG, .jpg or .jpeg for JPEG, in any case. Any other name is an error
// matching ErrFormat, so that a program can refuse an output path before it
// does any work, rather than write PNG bytes under a .jpg name.
func FormatOf(name string) (Format, error) {
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".png":
		return PNG, nil
	case ".jpg", ".jpeg":
		return JPEG, nil
	default:
		return PNG, fmt.Errorf("%w: %q (want .png, .jpg or .jpeg)", ErrFormat, name)
	}
}

// WithFormat sets the encoding of WriteHeatmap and WriteCurves (default PNG).
func WithFormat(f Format) Option { return optionFunc(func(c *config) { c.format = f }) }

// encode writes img in the format of opts; what names the chart in errors.
func encode(w io.Writer, img image.Image, opts []Option, what string) error {
	cfg, err := options(opts)
	if err != nil {
		return err
	}
	if cfg.format == JPEG {
		err = jpeg.Encode(w, img, &jpeg.Options{Quality: 95})
	} else {
		err = png.Encode(w, img)
	}
	if err != nil {
		return fmt.Errorf("chart: %s: %w", what, err)
	}
	return nil
}
