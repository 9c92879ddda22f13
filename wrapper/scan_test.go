package wrapper

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// scanned is what a golden file holds.
type scanned struct {
	Failures  []Failure `json:"failures"`
	Unmatched []string  `json:"unmatched,omitempty"`
}

func scanLines(log []byte) scanned {
	s := NewScanner()
	lines := strings.Split(string(log), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for _, l := range lines {
		s.Line(l)
	}
	return scanned{s.Failures(), s.Unmatched()}
}

func scanChunks(log []byte, size int) scanned {
	s := NewScanner()
	for len(log) > 0 {
		n := min(size, len(log))
		s.Write(log[:n])
		log = log[n:]
	}
	s.Close()
	return scanned{s.Failures(), s.Unmatched()}
}

// TestScannerLogs runs every captured (real-2.8) and hand-written log
// through the scanner, line by line and as a byte stream cut anywhere,
// and compares with its golden file.
func TestScannerLogs(t *testing.T) {
	logs, err := filepath.Glob("testdata/*/*.log")
	if err != nil || len(logs) < 20 {
		t.Fatalf("testdata logs: %v (%d found)", err, len(logs))
	}
	for _, p := range logs {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "testdata/"), ".log")
		t.Run(name, func(t *testing.T) {
			log, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			got := scanLines(log)
			for _, size := range []int{1, 7, 64, 4096} {
				if c := scanChunks(log, size); !reflect.DeepEqual(c, got) {
					t.Errorf("Write in chunks of %d gives\n%+v\nLine gives\n%+v", size, c, got)
				}
			}
			golden := strings.TrimSuffix(p, ".log") + ".golden"
			js, _ := json.MarshalIndent(got, "", "  ")
			js = append(js, '\n')
			if *update {
				if err := os.WriteFile(golden, js, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(js, want) {
				t.Errorf("scanner gives\n%s\ngolden %s has\n%s", js, golden, want)
			}
		})
	}
}

func TestScannerLines(t *testing.T) {
	const (
		a = "/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv"
		b = "/nix/store/vrhbsqyv4853052b7jnfqg816lb16hqk-b.drv"
	)
	tests := []struct {
		name  string
		lines []string
		want  []Failure
	}{
		{"nothing", []string{"these 2 derivations will be built:", "hello"}, []Failure{}},
		{
			"summary line alone is no failure",
			[]string{"error: build of '" + a + "', '" + b + "' failed"},
			[]Failure{},
		},
		{
			"note after the failure line (ssh://, --keep-going)",
			[]string{
				"building '" + a + "' on 'ssh://h'...",
				"error: build of '" + a + "' on 'ssh://h' failed: builder for '" + a + "' failed with exit code 2",
				"note: keeping build directory '/tmp/nix-build-a.drv-0'",
				"error: builder for '" + a + "' failed with exit code 1",
			},
			[]Failure{{Drv: a, KeptDir: "/tmp/nix-build-a.drv-0", Builder: "ssh://h", ExitCode: 2}},
		},
		{
			"colour codes around note: and inside the quotes",
			[]string{
				"\x1b[1mnote:\x1b[0m keeping build directory '\x1b[35;1m/tmp/nix-build-a.drv-3\x1b[0m'",
				"\x1b[31;1merror:\x1b[0m builder for '\x1b[35;1m" + a + "\x1b[0m' failed with exit code 3;",
			},
			[]Failure{{Drv: a, KeptDir: "/tmp/nix-build-a.drv-3", ExitCode: 3}},
		},
		{
			"progress redraw before the note, \\r\\n ending",
			[]string{
				"\r[1/0/1 built] building a: compiling\x1b[K\r\x1b[Knote: keeping build directory \"/nix/var/nix/builds/nix-1-2/build\"\x1b[0m\r",
				"\r\x1b[K\x1b[31;1merror:\x1b[0m Cannot build '" + a + "'.\r",
				"       Reason: \x1b[31;1mbuilder failed with exit code 2\x1b[0m.\r",
			},
			[]Failure{{Drv: a, KeptDir: "/nix/var/nix/builds/nix-1-2/build", ExitCode: 2}},
		},
		{
			"Cannot build without a builder reason",
			[]string{
				"error: Cannot build '" + a + "'.",
				"       Reason: platform mismatch",
				"error: Cannot build '" + b + "'.",
				"       Reason: 1 dependency failed.",
			},
			[]Failure{},
		},
		{
			"nested Nix in a local build's -L output is ignored",
			[]string{
				"building '" + a + "'...",
				"a> note: keeping build directory '/build/test/nix-build-x.drv-0'",
				"a> note: keeping build directory '/build/test/nix-9-9/build'",
				"note: keeping build directory '/tmp/nix-build-a.drv-0'",
				"error: builder for '" + a + "' failed with exit code 1",
			},
			[]Failure{{Drv: a, KeptDir: "/tmp/nix-build-a.drv-0", ExitCode: 1}},
		},
		{
			"nameless note goes to the derivation built last",
			[]string{
				"building '" + a + "'...",
				"building '" + b + "'...",
				"note: keeping build directory \"/nix/var/nix/builds/nix-1-1/build\"",
			},
			[]Failure{{Drv: b, KeptDir: "/nix/var/nix/builds/nix-1-1/build", ExitCode: -1}},
		},
		{
			"2.30.0-2.31.1 names carry the derivation's name: notes go by it",
			[]string{
				"building '" + a + "'...",
				"building '" + b + "'...",
				"note: keeping build directory '/nix/var/nix/builds/nix-build-a.drv-77-3/build'",
				"note: keeping build directory '/nix/var/nix/builds/nix-build-b.drv-77-4/build'",
			},
			[]Failure{
				{Drv: a, KeptDir: "/nix/var/nix/builds/nix-build-a.drv-77-3/build", ExitCode: -1},
				{Drv: b, KeptDir: "/nix/var/nix/builds/nix-build-b.drv-77-4/build", ExitCode: -1},
			},
		},
		{
			"Lix 2.94+ names the top, b/ID: nameless",
			[]string{
				"building '" + a + "'...",
				"note: keeping build directory '/nix/var/nix/b/0f3kq8/'",
				"error: builder for '" + a + "' failed with exit code 1",
			},
			[]Failure{{Drv: a, KeptDir: "/nix/var/nix/b/0f3kq8/", ExitCode: 1}},
		},
		{
			"relative or empty paths are not notes",
			[]string{
				"note: keeping build directory 'tmp/x'",
				"note: keeping build directory ''",
				"error: builder for 'x.drv' failed with exit code 1",
			},
			[]Failure{},
		},
		{
			"exit codes out of range",
			[]string{"error: builder for '" + a + "' failed with exit code 99999999999999999999"},
			[]Failure{{Drv: a, ExitCode: -1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewScanner()
			for _, l := range tt.lines {
				s.Line(l)
			}
			got := s.Failures()
			if got == nil {
				got = []Failure{}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestVisible(t *testing.T) {
	tests := map[string]string{
		"plain":                     "plain",
		"\x1b[31;1merror:\x1b[0m x": "error: x",
		"\x1b]8;;file:///x\x1b\\link\x1b]8;;\x07": "link",
		"a\x1b(Bb":          "ab",
		"tab\there\x07\x7f": "tab\there",
		"\x1b[":             "",
		"\x1b":              "",
	}
	for in, want := range tests {
		if got := visible(in); got != want {
			t.Errorf("visible(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriteCarriageReturn(t *testing.T) {
	s := NewScanner()
	// A progress bar redrawing for a long time without a newline keeps
	// only the current segment.
	for i := 0; i < 100000; i++ {
		s.Write([]byte("\r[0/1 built] building a: step\x1b[K"))
	}
	if n := len(s.buf) + len(s.prev[0]) + len(s.prev[1]); n > 200 {
		t.Fatalf("buffer grew to %d bytes", n)
	}
	s.Write([]byte("\r\x1b[Knote: keeping build directory '/tmp/nix-build-a.drv-0'\r\n"))
	s.Write([]byte("error: builder for '/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv' failed with exit code 4"))
	s.Close()
	want := []Failure{{Drv: "/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv", KeptDir: "/tmp/nix-build-a.drv-0", ExitCode: 4}}
	if got := s.Failures(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestBuildDirName(t *testing.T) {
	tests := map[string]string{
		"/tmp/nix-build-hello-2.12.drv-0":                             "hello-2.12",
		"/tmp/nix-build-hello.drv-0/build":                            "hello",
		"/nix/var/nix/builds/nix-build-hello.drv-1234-99/build":       "hello",
		"/nix/var/nix/builds/nix-1234-99/build":                       "",
		"/nix/var/nix/b/2xv8/b":                                       "",
		"/tmp/nix-build-a.drv-0/build/nix-build-nested.drv-0/build/x": "",
		"/": "",
		"/nix/var/nix/builds/nix-build-hello.drv-1234-99":         "hello",
		"/nix/var/nix/builds/nix-build-a.drv-3.drv-1234-99/build": "a.drv-3",
		"/nix/var/nix/b/2xv8":                         "",
		"/nix/var/nix/builds/nix-build-hello.drv-0/b": "hello", // Lix 2.92.2, 2.93.1
		"/nix/var/nix/builds/nix-1-2/b":               "",
		"/tmp/nix-build-hello":                        "",
	}
	for in, want := range tests {
		if got := buildDirName(in); got != want {
			t.Errorf("buildDirName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzScanner(f *testing.F) {
	logs, _ := filepath.Glob("testdata/*/*.log")
	for _, p := range logs {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a> note: keeping build directory '/x'\nerror: build of '/a.drv' on '' failed: Cannot build '/a.drv'.\nReason: builder failed with exit code 1\n"))
	f.Fuzz(func(t *testing.T, log []byte) {
		s := NewScanner()
		s.Write(log)
		s.Close()
		check := func(fs []Failure) {
			seen := map[string]bool{}
			for _, fl := range fs {
				if fl.Drv == "" || !filepath.IsAbs(fl.Drv) {
					t.Fatalf("failure with bad Drv %q", fl.Drv)
				}
				if fl.KeptDir != "" && !filepath.IsAbs(fl.KeptDir) {
					t.Fatalf("failure with relative KeptDir %q", fl.KeptDir)
				}
				if seen[fl.Drv] {
					t.Fatalf("%s listed twice", fl.Drv)
				}
				seen[fl.Drv] = true
			}
		}
		check(s.Failures())
		for _, d := range s.Unmatched() {
			if !filepath.IsAbs(d) {
				t.Fatalf("unmatched relative dir %q", d)
			}
		}
		// Line by line must agree with the byte stream.
		l := NewScanner()
		for _, line := range strings.Split(string(log), "\n") {
			l.Line(line)
		}
		check(l.Failures())
	})
}
