package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTerminalText(t *testing.T) {
	var out bytes.Buffer
	tt := newTerminalText(&out)
	// ESC [2J clears a screen; \r rewrites a line; U+009B is the C1 CSI; é
	// and 世 arrive split across writes; \xff is no UTF-8.
	for _, piece := range []string{"a\x1b[2Jb\r\n", "tab\there\x7f", "\u009b", "caf\xc3", "\xa9 \xe4\xb8", "\x96 \xff", "\x00"} {
		n, err := tt.Write([]byte(piece))
		require.NoError(t, err)
		assert.Equal(t, len(piece), n)
	}
	_, err := tt.Write([]byte("end \xe4"))
	require.NoError(t, err)
	require.NoError(t, tt.Flush())
	assert.Equal(t, `a\x1b[2Jb\x0d`+"\n"+"tab\there"+`\x7f\u009bcafé 世 \xff\x00end \xe4`, out.String())
}
