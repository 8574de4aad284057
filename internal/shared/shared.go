package shared

import (
	"bufio"
	"os"
	"path/filepath"
)

// modulePath is the first line of the repository's go.mod.
const modulePath = "module github.com/rotary-moe/rotary"

// Root returns the shared folder: $ROTARY_SHARED, else shared beside the
// repository that holds the working directory; "" if neither is a folder.
func Root() string {
	if dir := os.Getenv("ROTARY_SHARED"); isDir(dir) {
		return dir
	}
	if repo := repoRoot(); repo != "" {
		if dir := filepath.Join(repo, "..", "shared"); isDir(dir) {
			return dir
		}
	}
	return ""
}

// Traces returns the folder of the real routing traces: $ROTARY_TRACES,
// else traces in Root; "" if there is none.
func Traces() string {
	if dir := os.Getenv("ROTARY_TRACES"); isDir(dir) {
		return dir
	}
	if root := Root(); root != "" {
		if dir := filepath.Join(root, "traces"); isDir(dir) {
			return dir
		}
	}
	return ""
}

// repoRoot walks up from the working directory (a package's folder under
// go test) to the folder of this module's go.mod.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if isModule(filepath.Join(dir, "go.mod")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func isModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	return sc.Scan() && sc.Text() == modulePath
}

func isDir(dir string) bool {
	if dir == "" {
		return false
	}
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}
