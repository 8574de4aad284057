package quant

import "math"

// Reference quantizers of the K-quants (quantize_row_q*_K_ref in
// ggml-quants.c), which llama-quantize uses when it has no importance matrix.
// They search for each sub-block's scale (and min) by least squares over a
// few candidate grids, so their output depends on every float rounding: the
// arithmetic below follows ggml's expression by expression, and products
// that ggml rounds before adding are wrapped in float32() so Go cannot fuse
// them.

// groupMaxEps is ggml's threshold below which a group counts as all zero.
const groupMaxEps = 1e-15

func abs32(v float32) float32 { return float32(math.Abs(float64(v))) }

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

// kFitScaleMin fits x ≈ scale·L + min (min ≤ 0) with L in [0, nmax], trying
// the grid nmax/(max-min) and nstep+1 perturbed ones and keeping the one
// with the smallest weighted error (absolute with useMAD, else squared). It
// returns scale and -min and leaves the codes in l. This is ggml's
// make_qkx2_quants.
func kFitScaleMin(nmax int, x, weights []float32, l, laux []uint8, rmin, rdelta float32, nstep int, useMAD bool) (scale, negMin float32) {
	n := len(x)
	lo, hi := x[0], x[0]
	sumW := weights[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < n; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		w := weights[i]
		sumW += w
		sumX += float32(w * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		clear(l[:n])
		return 0, -lo
	}
	errOf := func(diff float32) float32 {
		if useMAD {
			return abs32(diff)
		}
		return float32(diff * diff)
	}
	iscale := float32(nmax) / (hi - lo)
	scale = 1 / iscale
	var bestErr float32
	for i, v := range x {
		q := clampInt(nearestInt(float32(iscale*(v-lo))), 0, nmax)
		l[i] = uint8(q)
		diff := float32(float32(scale*float32(q))+lo) - v
		bestErr += float32(weights[i] * errOf(diff))
	}
	if nstep < 1 {
		return scale, -lo
	}
	for is := 0; is <= nstep; is++ {
		iscale = (float32(rmin+float32(rdelta*float32(is))) + float32(nmax)) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			q := clampInt(nearestInt(float32(iscale*(v-lo))), 0, nmax)
			laux[i] = uint8(q)
			w := weights[i]
			wl := float32(w * float32(q))
			sumL += wl
			sumL2 += float32(wl * float32(q))
			sumXL += float32(wl * v)
		}
		d := float32(sumW*sumL2) - float32(sumL*sumL)
		if d > 0 {
			thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / d
			thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / d
			if thisMin > 0 {
				thisMin = 0
				thisScale = sumXL / sumL2
			}
			var curErr float32
			for i, v := range x {
				diff := float32(float32(thisScale*float32(laux[i]))+thisMin) - v
				curErr += float32(weights[i] * errOf(diff))
			}
			if curErr < bestErr {
				copy(l[:n], laux[:n])
				bestErr, scale, lo = curErr, thisScale, thisMin
			}
		}
	}
	return scale, -lo
}

// kFitScale fits x ≈ scale·(L-nmax) with L-nmax in [-nmax, nmax-1], weights
// x², trying the grid -nmax/max and 18 perturbed ones and keeping the best
// least-squares scale. The codes go to l (offset by nmax). This is ggml's
// make_qx_quants with rmse_type 1 and no importance weights.
func kFitScale(nmax int, x []float32, l []int8) float32 {
	var max, amax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, max = a, v
		}
	}
	if amax < groupMaxEps {
		clear(l[:len(x)])
		return 0
	}
	fit := func(iscale float32, store bool) (sumLX, sumL2 float32) {
		for i, v := range x {
			q := clampInt(nearestInt(float32(iscale*v)), -nmax, nmax-1)
			if store {
				l[i] = int8(q + nmax)
			}
			w := float32(v * v)
			sumLX += float32(float32(w*v) * float32(q))
			sumL2 += float32(float32(w*float32(q)) * float32(q))
		}
		return sumLX, sumL2
	}
	sumLX, sumL2 := fit(float32(-nmax)/max, true)
	var scale float32
	if sumL2 != 0 {
		scale = sumLX / sumL2
	}
	best := float32(scale * sumLX)
	for is := -9; is <= 9; is++ {
		if is == 0 {
			continue
		}
		iscale := -(float32(nmax) + float32(0.1*float32(is))) / max
		sumLX, sumL2 = fit(iscale, false)
		if sumL2 > 0 && float32(sumLX*sumLX) > float32(best*sumL2) {
			fit(iscale, true)
			scale = sumLX / sumL2
			best = float32(scale * sumLX)
		}
	}
	return scale
}

// q3FitScale is ggml's make_q3_quants with its iterative refinement: codes
// in [-nmax, nmax-1] (stored offset by nmax in l), weights x², each code
// moved one at a time while that improves the least-squares fit.
func q3FitScale(nmax int, x []float32, l []int8) float32 {
	var max, amax float32
	for _, v := range x {
		if a := abs32(v); a > amax {
			amax, max = a, v
		}
	}
	if amax < groupMaxEps {
		clear(l[:len(x)])
		return 0
	}
	iscale := float32(-nmax) / max
	var sumLX, sumL2 float32
	for i, v := range x {
		q := clampInt(nearestInt(float32(iscale*v)), -nmax, nmax-1)
		l[i] = int8(q)
		w := float32(v * v)
		sumLX += float32(float32(w*v) * float32(q))
		sumL2 += float32(float32(w*float32(q)) * float32(q))
	}
	for try := 0; try < 5; try++ {
		changed := 0
		for i, v := range x {
			w := float32(v * v)
			cur := float32(l[i])
			slx := sumLX - float32(float32(w*v)*cur)
			if slx > 0 {
				sl2 := sumL2 - float32(float32(w*cur)*cur)
				q := clampInt(nearestInt(float32(v*sl2)/slx), -nmax, nmax-1)
				if q != int(l[i]) {
					slx += float32(float32(w*v) * float32(q))
					sl2 += float32(float32(w*float32(q)) * float32(q))
					if sl2 > 0 && float32(float32(slx*slx)*sumL2) > float32(float32(sumLX*sumLX)*sl2) {
						l[i] = int8(q)
						sumLX, sumL2 = slx, sl2
						changed++
					}
				}
			}
		}
		if changed == 0 {
			break
		}
	}
	for i := range x {
		l[i] += int8(nmax)
	}
	if sumL2 > 0 {
		return sumLX / sumL2
	}
	return 0
}

// packK2Bits stores 256 codes of 0–3 in Q2_K/Q3_K's layout: per 128
// elements 32 bytes, bit pair k of byte l holding element 32k+l.
func packK2Bits(l *[256]uint8, qs []byte) {
	for j := 0; j < 256; j += 128 {
		for i := 0; i < 32; i++ {
			qs[j/4+i] = l[j+i] | l[j+i+32]<<2 | l[j+i+64]<<4 | l[j+i+96]<<6
		}
	}
}

// Q2_K: per 16 elements a 4-bit scale and min (relative to the f16 d and
// dmin), codes 0–3 with x ≈ d·sc·q - dmin·m.
func quantQ2K(src []float32, dst []byte) {
	var l [256]uint8
	var laux [16]uint8
	var weights [16]float32
	var scales, mins [16]float32
	for len(src) >= 256 && len(dst) >= 84 {
		x := (*[256]float32)(src)
		b := (*[84]byte)(dst)
		clear(b[:])
		var maxScale, maxMin float32
		for j := 0; j < 16; j++ {
			xs := x[16*j : 16*j+16]
			for i, v := range xs {
				weights[i] = abs32(v)
			}
			scales[j], mins[j] = kFitScaleMin(3, xs, weights[:], l[16*j:16*j+16], laux[:], -0.5, 0.1, 15, true)
			if scales[j] > maxScale {
				maxScale = scales[j]
			}
			if mins[j] > maxMin {
				maxMin = mins[j]
			}
		}
		if maxScale > 0 {
			iscale := 15 / maxScale
			for j := range scales {
				b[j] = uint8(nearestInt(float32(iscale * scales[j])))
			}
			putF16(b[80:], maxScale/15)
		}
		if maxMin > 0 {
			iscale := 15 / maxMin
			for j := range mins {
				b[j] |= uint8(nearestInt(float32(iscale*mins[j]))) << 4
			}
			putF16(b[82:], maxMin/15)
		}
		d, dmin := f16At(b[80:]), f16At(b[82:])
		for j := 0; j < 16; j++ {
			dl := d * float32(b[j]&15)
			if dl == 0 {
				continue
			}
			ml := float32(dmin * float32(b[j]>>4)) // rounded before the addition, as in ggml
			for i := 16 * j; i < 16*j+16; i++ {
				l[i] = uint8(clampInt(nearestInt((x[i]+ml)/dl), 0, 3))
			}
		}
		packK2Bits(&l, b[16:80])
		src, dst = src[256:], dst[84:]
	}
}

// Q3_K: per 16 elements a signed 6-bit scale relative to the f16 d, codes
// -4–3 stored as 2 low bits plus a high bit in hmask.
func quantQ3K(src []float32, dst []byte) {
	var l [256]int8
	var scales [16]float32
	for len(src) >= 256 && len(dst) >= 110 {
		x := (*[256]float32)(src)
		b := (*[110]byte)(dst)
		clear(b[:])
		var maxScale, amax float32
		for j := 0; j < 16; j++ {
			scales[j] = q3FitScale(4, x[16*j:16*j+16], l[16*j:16*j+16])
			if a := abs32(scales[j]); a > amax {
				amax, maxScale = a, scales[j]
			}
		}
		sc := b[96:108]
		if maxScale != 0 {
			iscale := -32 / maxScale
			for j := range scales {
				v := uint8(clampInt(int(int8(nearestInt(float32(iscale*scales[j])))), -32, 31) + 32)
				if j < 8 {
					sc[j] = v & 15
				} else {
					sc[j-8] |= (v & 15) << 4
				}
				sc[8+j%4] |= v >> 4 << (2 * (j / 4))
			}
			putF16(b[108:], 1/iscale)
		}
		d := f16At(b[108:])
		for j, s := range q3KScales((*[12]byte)(sc)) {
			dl := d * float32(s)
			if dl == 0 {
				continue
			}
			for i := 16 * j; i < 16*j+16; i++ {
				l[i] = int8(clampInt(nearestInt(x[i]/dl), -4, 3) + 4)
			}
		}
		var low [256]uint8
		for i, v := range l {
			if v > 3 {
				b[i%32] |= 1 << (i / 32)
				v -= 4
			}
			low[i] = uint8(v)
		}
		packK2Bits(&low, b[32:96])
		src, dst = src[256:], dst[110:]
	}
}

// kScalesPack stores eight 6-bit scales and mins in Q4_K/Q5_K's 12 bytes
// (the inverse of kScaleMin).
func kScalesPack(sc *[12]byte, ls, lm *[8]uint8) {
	for j := 0; j < 8; j++ {
		if j < 4 {
			sc[j] = ls[j]
			sc[j+4] = lm[j]
		} else {
			sc[j+4] = ls[j]&15 | lm[j]&15<<4
			sc[j-4] |= ls[j] >> 4 << 6
			sc[j] |= lm[j] >> 4 << 6
		}
	}
}

// quantK4or5 is the shared body of the Q4_K and Q5_K reference quantizers:
// per 32 elements a 6-bit scale and min found by kFitScaleMin with weights
// mean|x|+|x|, then every element requantized against the stored values. It
// returns d and fills codes (0–nmax) and the 12 scale bytes.
func quantK4or5(x *[256]float32, nmax int, rmin, rdelta float32, nstep int, l *[256]uint8, sc *[12]byte) (d, dmin float32) {
	var laux [32]uint8
	var weights [32]float32
	var scales, mins [8]float32
	var maxScale, maxMin float32
	for j := 0; j < 8; j++ {
		xs := x[32*j : 32*j+32]
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := float32(math.Sqrt(float64(sumX2 / 32)))
		for i, v := range xs {
			weights[i] = avX + abs32(v)
		}
		scales[j], mins[j] = kFitScaleMin(nmax, xs, weights[:], l[32*j:32*j+32], laux[:], rmin, rdelta, nstep, false)
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}
	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	var ls, lm [8]uint8
	for j := range ls {
		ls[j] = min(63, uint8(nearestInt(float32(invScale*scales[j]))))
		lm[j] = min(63, uint8(nearestInt(float32(invMin*mins[j]))))
	}
	clear(sc[:])
	kScalesPack(sc, &ls, &lm)
	d16, dmin16 := Float32ToFloat16(maxScale/63), Float32ToFloat16(maxMin/63)
	d, dmin = Float16ToFloat32(d16), Float16ToFloat32(dmin16)
	for j := 0; j < 8; j++ {
		s, m := kScaleMin(j, sc)
		dl := d * float32(s)
		if dl == 0 {
			continue
		}
		ml := float32(dmin * float32(m)) // rounded before the addition, as in ggml
		for i := 32 * j; i < 32*j+32; i++ {
			l[i] = uint8(clampInt(nearestInt((x[i]+ml)/dl), 0, nmax))
		}
	}
	return d, dmin
}

// Q4_K: d, dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles.
func quantQ4K(src []float32, dst []byte) {
	var l [256]uint8
	for len(src) >= 256 && len(dst) >= 144 {
		b := (*[144]byte)(dst)
		d, dmin := quantK4or5((*[256]float32)(src), 15, -1, 0.1, 20, &l, (*[12]byte)(b[4:16]))
		putF16(b[0:], d)
		putF16(b[2:], dmin)
		for j := 0; j < 4; j++ {
			for i := 0; i < 32; i++ {
				b[16+32*j+i] = l[64*j+i] | l[64*j+32+i]<<4
			}
		}
		src, dst = src[256:], dst[144:]
	}
}

// Q5_K: Q4_K with 5-bit codes, the fifth bits in qh.
func quantQ5K(src []float32, dst []byte) {
	var l [256]uint8
	for len(src) >= 256 && len(dst) >= 176 {
		b := (*[176]byte)(dst)
		d, dmin := quantK4or5((*[256]float32)(src), 31, -0.5, 0.1, 15, &l, (*[12]byte)(b[4:16]))
		putF16(b[0:], d)
		putF16(b[2:], dmin)
		qh := b[16:48]
		clear(qh)
		for j := 0; j < 4; j++ {
			for i := 0; i < 32; i++ {
				lo, hi := l[64*j+i], l[64*j+32+i]
				qh[i] |= lo >> 4 << (2 * j)
				qh[i] |= hi >> 4 << (2*j + 1)
				b[48+32*j+i] = lo&15 | hi&15<<4
			}
		}
		src, dst = src[256:], dst[176:]
	}
}

// Q6_K: per 16 elements an int8 scale relative to the f16 d, codes -32–31
// stored as 4 low bits in ql and 2 high bits in qh.
func quantQ6K(src []float32, dst []byte) {
	var l [256]int8
	var scales [16]float32
	for len(src) >= 256 && len(dst) >= 210 {
		x := (*[256]float32)(src)
		b := (*[210]byte)(dst)
		clear(b[:])
		var maxScale, maxAbs float32
		for j := 0; j < 16; j++ {
			scales[j] = kFitScale(32, x[16*j:16*j+16], l[16*j:16*j+16])
			if a := abs32(scales[j]); a > maxAbs {
				maxAbs, maxScale = a, scales[j]
			}
		}
		if maxAbs < groupMaxEps {
			src, dst = src[256:], dst[210:]
			continue
		}
		iscale := -128 / maxScale
		putF16(b[208:], 1/iscale)
		for j := range scales {
			b[192+j] = byte(int8(min(127, nearestInt(float32(iscale*scales[j])))))
		}
		d := f16At(b[208:])
		for j := 0; j < 16; j++ {
			dl := d * float32(int8(b[192+j]))
			if dl == 0 {
				continue
			}
			for i := 16 * j; i < 16*j+16; i++ {
				l[i] = int8(clampInt(nearestInt(x[i]/dl), -32, 31) + 32)
			}
		}
		for half := 0; half < 2; half++ {
			ql := b[64*half : 64*half+64]
			qh := b[128+32*half : 160+32*half]
			q := l[128*half : 128*half+128]
			for i := 0; i < 32; i++ {
				q1, q2, q3, q4 := uint8(q[i]), uint8(q[i+32]), uint8(q[i+64]), uint8(q[i+96])
				ql[i] = q1&15 | q3&15<<4
				ql[i+32] = q2&15 | q4&15<<4
				qh[i] = q1>>4 | q2>>4<<2 | q3>>4<<4 | q4>>4<<6
			}
		}
		src, dst = src[256:], dst[210:]
	}
}
