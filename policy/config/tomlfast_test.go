package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// fastTOMLCases are TOML documents at the edges of what fastTOML takes:
// each kind of value, key and table, and documents it must leave to
// BurntSushi/toml (errors, datetimes, TOML 1.1, constructs it does not
// follow).
var fastTOMLCases = []string{
	"",
	"# only a comment\n",
	"a = 1\nb = -2\nc = +3\nd = 0\ne = -0\nf = 9223372036854775807\ng = -9223372036854775808\n",
	"a = 1.5\nb = -0.0\nc = 1e3\nd = 6.02E+23\ne = 2.5e-3\nf = +1.0\n",
	"a = true\nb = false\n",
	"a = \"x\\ty\\n\\\"q\\\" \\\\ \\u00e9 \\U0001F600\"\nb = 'lit\\eral'\n",
	"a = \"\"\"\nline 1\\\n   line 2\n\"\"\"\nb = '''\nraw\n  x'''\nc = \"\"\"\"quoted\"\"\"\"\n",
	"a = []\nb = [1, 2, 3]\nc = [\"x\", 'y',]\nd = [[1, 2], [\"a\"], []]\ne = [ # comment\n  1,\n  2, # two\n]\n",
	"a = {}\nb = {x = 1, y = \"z\"}\nc = {d = {e = [1, {f = 2}]}}\n",
	"a.b.c = 1\na.b.d = 2\na.e = 3\n\"q.k\".x = 4\n'l k'.y = 5\n",
	"[t]\nx = 1\n[t.u]\ny = 2\n[v.w.x]\nz = 3\n",
	"[a.b]\nx = 1\n[a]\ny = 2\n",
	"[[a]]\nx = 1\n[[a]]\nx = 2\n[a.b]\ny = 3\n[[a.c]]\nz = 1\n[[a.c]]\nz = 2\n",
	"[[p]]\nname = \"x\"\n[[p.egress]]\naction = \"Allow\"\ndestination = { ports = [22, \"80:90\"] }\n[[p.egress]]\naction = \"Deny\"\n",
	"a = [{x = 1}, {x = 2, y = {z = [true]}}]\n",
	"[ t . 'u' . \"v\" ]\nk = 1\n",
	"a = 1\r\nb = \"x\"\r\n[t]\r\nc = [1,\r\n2]\r\n",
	"\ufeffa = 1\n",
	"key = \"ünïcödé\"\n\"ключ\" = 1\n",
	"a = {x = 1, x = 2}\n",   // duplicate in an inline table
	"a = 1\na = 2\n",         // duplicate key
	"[t]\n[t]\n",             // table defined twice
	"a = {x = 1}\n[a]\n",     // inline table extended
	"a = {x = 1}\na.y = 2\n", // inline table extended by a dotted key
	"a = [1]\n[[a]]\n",       // static array appended to
	"[[a]]\n[a]\n",           // array of tables redefined
	"a.b = 1\n[a]\n",         // TOML 1.1 leniency of BurntSushi
	"[fruit]\napple.color = 'red'\n[fruit.apple.texture]\nsmooth = true\n",
	"a = 0x1F\nb = 0o17\nc = 0b101\nd = 1_000\n",
	"a = inf\nb = -inf\nc = nan\nd = 1_0.5\n",
	"a = 1979-05-27T07:32:00Z\nb = 1979-05-27\nc = 07:32:00\nd = 1979-05-27T07:32:00\n",
	"a = 9223372036854775808\n", // out of range
	"a = 1.\n",
	"a = 01\n",
	"a = \"\\e\"\n",          // TOML 1.1 escape
	"a = {x = 1,\n y = 2}\n", // TOML 1.1 newline in an inline table
	"a = 1 b = 2\n",
	"a = \"unterminated\n",
	"[t\nx = 1\n",
	"= 1\n",
	"a = \"\x00\"\n",
	"a = \"\x7f\"\n",
	"a = \"\xff\"\n",
	"# \xff\na = 1\n",
	"a = 'x\x01'\n",
	"a = [1, 'x', 2.5, true, [], {}]\n",
}

// TestFastTOMLAgrees: on every document fastTOML takes, BurntSushi/toml's
// Decode succeeds with the same value; the example configurations and a
// generated 1000-rule policy take the fast path.
func TestFastTOMLAgrees(t *testing.T) {
	var docs []string
	docs = append(docs, fastTOMLCases...)
	files, _ := filepath.Glob("../../examples/*/*.toml")
	broken, _ := filepath.Glob("testdata/broken/*.toml")
	for _, f := range append(files, broken...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, string(b))
	}
	big := bigTOML(1000)
	docs = append(docs, big)
	fast := 0
	for _, doc := range docs {
		if checkFastTOML(t, []byte(doc)) {
			fast++
		}
	}
	t.Logf("%d of %d documents took the fast path", fast, len(docs))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if _, ok := fastTOML(b); !ok {
			t.Errorf("%s: not decoded by the fast path", f)
		}
	}
	if _, ok := fastTOML([]byte(big)); !ok {
		t.Error("the generated policy: not decoded by the fast path")
	}
	for _, doc := range []string{"a = 1\na = 2\n", "a = 1979-05-27\n", "a = inf\n", "a.b = 1\n[a]\n"} {
		if _, ok := fastTOML([]byte(doc)); ok {
			t.Errorf("%q: the fast path took it", doc)
		}
	}
}

// checkFastTOML reports whether fastTOML took data, failing t if Decode
// disagrees with it.
func checkFastTOML(t testing.TB, data []byte) bool {
	t.Helper()
	got, ok := fastTOML(data)
	if !ok {
		return false
	}
	var want map[string]any
	if _, err := toml.Decode(string(data), &want); err != nil {
		t.Fatalf("fastTOML took %q, which BurntSushi/toml refuses: %v", data, err)
	}
	if want == nil {
		want = map[string]any{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fastTOML(%q) =\n%#v\nBurntSushi/toml:\n%#v", data, got, want)
	}
	return true
}

// bigTOML is a policy of n rules in nfgate's TOML, as netbench writes it.
func bigTOML(n int) string {
	var b strings.Builder
	b.WriteString("[gateway]\nnodeName = \"gw\"\n\n[[hostEndpoint]]\nname = \"gw.srv0\"\nlabels = { role = \"servers\" }\ninterfaceName = \"srv0\"\nnode = \"gw\"\nexpectedIPs = [\"198.18.2.1\"]\n")
	for i := 0; i < n; i++ {
		if i%500 == 0 {
			fmt.Fprintf(&b, "\n[[globalNetworkPolicy]]\nname = \"bench-%03d\"\norder = %d\nselector = \"role == 'servers'\"\napplyOnForward = true\ntypes = [\"Egress\"]\n", i/500, i/500+1)
		}
		fmt.Fprintf(&b, "[[globalNetworkPolicy.egress]]\naction = \"Allow\"\nprotocol = \"UDP\"\nsource = { nets = [\"198.19.%d.0/24\"] }\ndestination = { ports = [%d, \"%d:%d\"] }\n",
			i%256, 10000+i, 20000+i, 20010+i)
	}
	return b.String()
}

// FuzzFastTOML: whatever fastTOML takes, BurntSushi/toml takes, with the
// same value.
func FuzzFastTOML(f *testing.F) {
	for _, c := range fastTOMLCases {
		f.Add([]byte(c))
	}
	addSeeds(f, "../../examples/*/*.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastTOML(t, data)
	})
}
