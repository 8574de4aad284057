package rotary

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestImportsStayLean keeps what an importer of rotary links to residency:
// no chart, image or font code, and no HTTP server (zap's level handler
// brought one).
func TestImportsStayLean(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to list the imports with")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	require.NoError(t, err)
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"golang.org/x/image", "image", "net/http", "go.uber.org/zap", "github.com/rotary-moe/rotary/profile/chart"} {
			require.False(t, dep == banned || strings.HasPrefix(dep, banned+"/"), "rotary imports %s", dep)
		}
	}
}
