package report

import (
	"bytes"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	rs := []Record{
		{Check: Host, Arg: "/home", Outcome: Errno, Errno: "ENOENT"},
		{Check: Remount, Arg: "/", Nested: true, Outcome: Errno, Errno: "EPERM"},
		{Check: Ls, Arg: "/tmp", Outcome: Value},
		{Check: Ptrace, Arg: "2", Outcome: OK, Detail: "/bin/sh"},
		{Check: IPRoute, Outcome: Error, Detail: "exit status 1: a\nb"},
		{Check: HandleFSRoot, Outcome: NotTried, Detail: "handle type 2"},
	}
	var out bytes.Buffer
	out.WriteString("echo INJECTED\r\n")
	for _, r := range rs {
		if err := Write(&out, r); err != nil {
			t.Fatal(err)
		}
	}
	// As a terminal passes it on.
	got, errs := Parse(strings.ReplaceAll(out.String(), "\n", "\r\n"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(got) != len(rs) {
		t.Fatalf("parsed %d records, want %d: %v", len(got), len(rs), got)
	}
	for _, r := range rs {
		if got[r.Key()] != r {
			t.Errorf("%s: parsed %+v, want %+v", r.Key(), got[r.Key()], r)
		}
	}
	for r, want := range map[Record]string{
		rs[0]: "host /home = ENOENT",
		rs[1]: "nested remount rw / = EPERM",
		rs[2]: "ls /tmp = ",
		rs[3]: "ptrace 2 = ok: /bin/sh",
		rs[5]: "open_by_handle_at fs root = not tried (handle type 2)",
	} {
		if r.String() != want {
			t.Errorf("%+v prints as %q, want %q", r, r.String(), want)
		}
	}
	if _, errs := Parse(out.String() + out.String()); len(errs) != len(rs) {
		t.Errorf("each repeated record should be an error: %v", errs)
	}
	if !Ls.Fact() || Host.Fact() || Setup.Fact() {
		t.Error("Ls is a fact, Host and Setup are attempts")
	}
}

// FuzzParse: no output makes Parse panic, and what it parses prints
// back as it was read.
func FuzzParse(f *testing.F) {
	f.Add(`{"check":"host","arg":"/home","outcome":"errno","errno":"ENOENT"}` + "\n")
	f.Add(`x{"check":"ls","nested":true,"outcome":"value","detail":"a b"}` + "\r\n{\"check\":")
	f.Fuzz(func(t *testing.T, out string) {
		rs, _ := Parse(out)
		for k, r := range rs {
			if r.Key() != k {
				t.Errorf("record %+v filed under %v", r, k)
			}
			var b bytes.Buffer
			if err := Write(&b, r); err != nil {
				t.Fatal(err)
			}
			again, errs := Parse(b.String())
			if len(errs) > 0 || len(again) != 1 || again[k] != r {
				t.Errorf("%+v does not read back: %v %v", r, again, errs)
			}
		}
	})
}
