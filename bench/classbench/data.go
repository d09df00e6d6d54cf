package classbench

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnvDir names the environment variable that overrides where the data is.
const EnvDir = "NFGATE_CLASSBENCH"

// Names and Sizes are the sets the benchmark knows.
var (
	Names = []string{"acl1", "fw1", "ipc1"}
	Sizes = []string{"1k", "10k", "100k"}
)

// Dir returns the ClassBench data directory: $NFGATE_CLASSBENCH if set,
// otherwise the first shared/classbench found in the working directory or one
// of its parents (the repository's ../shared/classbench when run from inside
// a checkout). ok is false when there is none.
func Dir() (dir string, ok bool) {
	if d := os.Getenv(EnvDir); d != "" {
		return d, true
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		c := filepath.Join(d, "shared", "classbench")
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// Set is one loaded rule set with its trace.
type Set struct {
	Name, Size string // e.g. "acl1", "10k"
	Rules      []Rule
	Trace      []Packet
	// Source is the rule file, or "synthetic" for a generated set.
	Source string
}

// files returns the rule and trace paths of a set inside dir.
func files(dir, name, size string) (rules, trace string, err error) {
	switch size {
	case "1k", "10k":
		rules = filepath.Join(dir, "hypersplit-ehzuf", name+"_"+strings.ToUpper(size))
	case "100k":
		rules = filepath.Join(dir, "generated-100k", name+"_100K")
	default:
		return "", "", fmt.Errorf("unknown size %q (want one of %s)", size, strings.Join(Sizes, ", "))
	}
	return rules, rules + "_trace", nil
}

// Load reads the named set from dir.
func Load(dir, name, size string) (*Set, error) {
	rp, tp, err := files(dir, name, size)
	if err != nil {
		return nil, err
	}
	rules, err := LoadRules(rp)
	if err != nil {
		return nil, err
	}
	trace, err := LoadTrace(tp)
	if err != nil {
		return nil, err
	}
	return &Set{Name: name, Size: size, Rules: rules, Trace: trace, Source: rp}, nil
}

// Open loads the named set from Dir, or generates a synthetic one of the same
// kind when the data directory or the set's files are absent.
func Open(name, size string) (*Set, error) {
	if dir, ok := Dir(); ok {
		s, err := Load(dir, name, size)
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return s, err
		}
	}
	n, err := SizeRules(size)
	if err != nil {
		return nil, err
	}
	rules, trace, err := Generate(name, n, 1)
	if err != nil {
		return nil, err
	}
	return &Set{Name: name, Size: size, Rules: rules, Trace: trace, Source: "synthetic"}, nil
}

// SizeRules is the nominal rule count of a size name.
func SizeRules(size string) (int, error) {
	switch size {
	case "1k":
		return 1000, nil
	case "10k":
		return 10000, nil
	case "100k":
		return 100000, nil
	}
	return 0, fmt.Errorf("unknown size %q (want one of %s)", size, strings.Join(Sizes, ", "))
}
