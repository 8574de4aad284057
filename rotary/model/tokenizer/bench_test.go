package tokenizer

import "testing"

// englishParagraph is ordinary prose (about 1 KB) for the throughput figure.
const englishParagraph = `The history of the printing press begins in the fifteenth century, when ` +
	`Johannes Gutenberg combined movable metal type, oil-based ink and a wooden press ` +
	`adapted from those used to make wine. Before his workshop in Mainz, books were ` +
	`copied by hand, a slow and costly process that kept them in the libraries of ` +
	`monasteries, universities and the very rich. Within fifty years, presses were ` +
	`running in more than two hundred cities across Europe, and millions of volumes ` +
	`had been printed. Prices fell, literacy rose, and ideas travelled faster than ` +
	`ever before: scientists could compare their observations, reformers could ` +
	`spread pamphlets to thousands of readers, and merchants could rely on printed ` +
	`tables of weights, measures and exchange rates. Historians still argue about ` +
	`how much of the Renaissance, the Reformation and the Scientific Revolution we ` +
	`owe to this one machine, but few doubt that it changed the way knowledge is ` +
	`made, shared and preserved. Today's digital networks are often described as a ` +
	`second printing revolution, and the comparison is useful as long as we ` +
	`remember how long the first one took to unfold.`

// BenchmarkEncode reports encoding throughput (MB/s) on English prose with
// the test models' vocabulary (500 merges; a full Qwen vocabulary merges
// further, so BPE does more merges per word). "cold" starts every iteration
// with an empty word cache, so every word goes through BPE; "warm" is Encode
// as a caller sees it on a text whose words it has seen before.
func BenchmarkEncode(b *testing.B) {
	for _, o := range oracles {
		tok := loadGGUF(b, o.model)
		b.Run(tok.Pre()+"/cold", func(b *testing.B) {
			b.SetBytes(int64(len(englishParagraph)))
			for b.Loop() {
				tok.encodeWith(new(encodeState), englishParagraph, true, false, false)
			}
		})
		b.Run(tok.Pre()+"/warm", func(b *testing.B) {
			b.SetBytes(int64(len(englishParagraph)))
			b.ReportAllocs()
			for b.Loop() {
				tok.Encode(englishParagraph)
			}
		})
	}
}
