//go:build linux

package sandbox

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkCopyTree and BenchmarkCpA copy the same generated tree, with
// copyTree and with cp -a, so that one run gives their ratio
// (testdata/bench/copy.sh prints it). The tree has NBS_BENCH_FILES files
// (default 2000) holding NBS_BENCH_BYTES bytes (default 64 MiB) in sizes
// spread log-uniformly, 50 files and a symlink per directory. It is made
// anew in a temporary directory by each benchmark, or once and kept in
// NBS_BENCH_DIR when that is set.

func benchEnv(b *testing.B, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// benchTree returns the tree to copy and the bytes in it.
func benchTree(b *testing.B) (string, int64) {
	files := benchEnv(b, "NBS_BENCH_FILES", 2000)
	size := benchEnv(b, "NBS_BENCH_BYTES", 64<<20)
	var src string
	if dir := os.Getenv("NBS_BENCH_DIR"); dir != "" {
		src = filepath.Join(dir, fmt.Sprintf("src-%d-%d", files, size))
		if _, err := os.Stat(src + ".done"); err == nil {
			return src, size
		}
		if err := removeTree(src); err != nil {
			b.Fatal(err)
		}
	} else {
		src = filepath.Join(b.TempDir(), "src")
	}
	makeBenchTree(b, src, files, size)
	if os.Getenv("NBS_BENCH_DIR") != "" {
		if err := os.WriteFile(src+".done", nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	unix.Sync()
	return src, size
}

func makeBenchTree(b *testing.B, src string, files, size int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	weights := make([]float64, files)
	var sum float64
	for i := range weights {
		weights[i] = math.Exp(rng.Float64() * math.Log(1e5)) // 1 to 100 000
		sum += weights[i]
	}
	noise := make([]byte, 4<<20)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	var written int64
	for i := range files {
		n := int64(float64(size) * weights[i] / sum)
		if i == files-1 {
			n = size - written
		}
		written += n
		dir := filepath.Join(src, fmt.Sprintf("d%03d/e%04d", i/50/64, i/50))
		if i%50 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.Symlink(fmt.Sprintf("f%d", i), dir+"/link"); err != nil {
				b.Fatal(err)
			}
		}
		f, err := os.OpenFile(fmt.Sprintf("%s/f%d", dir, i), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		for n > 0 {
			off := rng.IntN(len(noise) / 2)
			chunk := min(n, int64(len(noise)-off))
			if _, err := f.Write(noise[off : off+int(chunk)]); err != nil {
				b.Fatal(err)
			}
			n -= chunk
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCopy times copy into a fresh dst per iteration; removing it and
// flushing the page cache's dirty pages is not timed.
func benchCopy(b *testing.B, size int64, copy func(dst string) error) {
	dir := b.TempDir()
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		dst := fmt.Sprintf("%s/dst%d", dir, i)
		if err := copy(dst); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := removeTree(dst); err != nil {
			b.Fatal(err)
		}
		unix.Sync()
		b.StartTimer()
	}
}

func BenchmarkCopyTree(b *testing.B) {
	src, size := benchTree(b)
	for _, workers := range []int{1, defaultWorkers} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			benchCopy(b, size, func(dst string) error {
				_, err := copyTree(context.Background(), src, dst, copyOptions{Workers: workers})
				return err
			})
		})
	}
}

func BenchmarkCpA(b *testing.B) {
	cp, err := exec.LookPath("cp")
	if err != nil {
		b.Skip("no cp to compare with")
	}
	src, size := benchTree(b)
	benchCopy(b, size, func(dst string) error {
		if out, err := exec.Command(cp, "-a", src, dst).CombinedOutput(); err != nil {
			return fmt.Errorf("cp -a: %v: %s", err, out)
		}
		return nil
	})
}
