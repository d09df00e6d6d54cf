//go:build linux

package lab

import (
	"strings"
	"testing"
)

func TestLabConfigMovesEngineAndKeepsLineNumbers(t *testing.T) {
	in := "[gateway]\nnodeName = \"gw\"\n\n[engine]\ndeadline = \"200ms\"\nqueues = 4\n\n[[hostEndpoint]]\nname = \"x\"\n"
	got := labConfig(in, "/tmp/t.jsonl")
	want := "[gateway]\nnodeName = \"gw\"\n\n\n\n\n\n[[hostEndpoint]]\nname = \"x\"\n" +
		"\n[engine] # added by the demo\ntraceFile = \"/tmp/t.jsonl\"\nqueues = 1\ndeadline = \"200ms\"\n\n"
	if got != want {
		t.Errorf("labConfig:\n%s\nwant:\n%s", got, want)
	}
	inLines, gotLines := strings.Split(in, "\n"), strings.Split(got, "\n")
	if inLines[7] != gotLines[7] {
		t.Errorf("line 8 moved: %q, want %q", gotLines[7], inLines[7])
	}
}

func TestLabConfigWithoutEngine(t *testing.T) {
	got := labConfig("[gateway]\nnodeName = \"gw\"", "/t")
	want := "[gateway]\nnodeName = \"gw\"\n\n[engine] # added by the demo\ntraceFile = \"/t\"\nqueues = 1\n"
	if got != want {
		t.Errorf("labConfig:\n%q\nwant:\n%q", got, want)
	}
}
