package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/rotary-moe/rotary/experts"
	"github.com/rotary-moe/rotary/rotary/model/tokenizer"
)

func Example() {
	f, err := experts.Open("../../../experts/testdata/qwen35moe-tiny-f32.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		log.Fatal(err)
	}

	ids := tok.Encode("<|im_start|>user\nHello world<|im_end|>")
	fmt.Println(ids)
	text, err := tok.Decode(ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", text)
	fmt.Println(tok.IsEOG(ids[len(ids)-1]))
	// Output:
	// [757 84 494 198 39 68 362 78 641 758]
	// "<|im_start|>user\nHello world<|im_end|>"
	// true
}

func ExampleDecoder() {
	f, err := experts.Open("../../../experts/testdata/qwen3moe-tiny-q8_0.gguf")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		log.Fatal(err)
	}

	// "Café" takes four tokens; the last two are the two bytes of "é".
	d := tok.NewDecoder()
	for _, id := range tok.Encode("Café") {
		piece, err := d.Write(id)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d -> %q\n", id, piece)
	}
	// Output:
	// 34 -> "C"
	// 431 -> "af"
	// 127 -> ""
	// 102 -> "é"
}
