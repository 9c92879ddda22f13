package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nix-build-shell/nbs/sandbox"
	terminal "github.com/nix-build-shell/nbs/sandbox/term" // "term" is the e2e tests' outer terminal
)

// progressDelay: a copy that ends sooner shows no progress bar at all.
// NBS_PROGRESS_DELAY (seconds, like git's GIT_PROGRESS_DELAY) changes it.
const progressDelay = 500 * time.Millisecond

func progressDelayFromEnv() time.Duration {
	if v := os.Getenv("NBS_PROGRESS_DELAY"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
			return time.Duration(s * float64(time.Second))
		}
	}
	return progressDelay
}

// copyProgress draws the progress of the copy of a kept directory on a
// terminal, on one line redrawn with \r and cleared at the end:
//
//	copying /build  [#########...........]  45%  1.2/2.7 GiB  20312/50000 files  230 MiB/s  ETA 7s
type copyProgress struct {
	w     io.Writer
	width func() int // terminal columns, 0 when unknown
	start time.Time
	now   func() time.Time
	delay time.Duration

	mu    sync.Mutex
	drawn int // length of the line on screen, 0 when none
}

// newCopyProgress returns the sandbox.Config.Progress callback for stderr,
// or nil when stderr is not a terminal: a log file gets no progress bar,
// and without a callback the copy skips its counting pass.
func newCopyProgress(stderr *os.File) func(sandbox.CopyProgress) {
	if !terminal.IsTerminal(stderr) {
		return nil
	}
	p := &copyProgress{
		w:     stderr,
		width: func() int { return terminal.Width(stderr) },
		start: time.Now(),
		now:   time.Now,
		delay: progressDelayFromEnv(),
	}
	return p.update
}

func (p *copyProgress) update(cp sandbox.CopyProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cp.Done {
		if p.drawn > 0 {
			fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
			p.drawn = 0
		}
		return
	}
	elapsed := p.now().Sub(p.start)
	if elapsed < p.delay {
		return
	}
	line := progressLine(cp, elapsed, p.width())
	pad := ""
	if n := p.drawn - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	fmt.Fprintf(p.w, "\r%s%s", line, pad)
	p.drawn = len(line)
}

// progressLine is one line of the progress bar, at most width-1
// characters (the last column would make some terminals wrap).
func progressLine(cp sandbox.CopyProgress, elapsed time.Duration, width int) string {
	frac := 0.0
	if cp.TotalBytes > 0 {
		frac = float64(cp.Bytes) / float64(cp.TotalBytes)
	} else if cp.TotalFiles > 0 {
		frac = float64(cp.Files) / float64(cp.TotalFiles)
	}
	frac = min(max(frac, 0), 1)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(cp.Bytes) / s
	}
	eta := "ETA -"
	if rate > 0 && cp.TotalBytes >= cp.Bytes {
		eta = "ETA " + shortDuration(time.Duration(float64(cp.TotalBytes-cp.Bytes)/rate*float64(time.Second)))
	}
	stats := fmt.Sprintf("%3.0f%%  %s/%s  %d/%d files  %s/s  %s",
		frac*100, humanBytes(cp.Bytes), humanBytes(cp.TotalBytes), cp.Files, cp.TotalFiles, humanBytes(int64(rate)), eta)
	if width <= 0 {
		width = 80
	}
	const label = "copying /build  "
	barWidth := min(30, width-1-len(label)-len(stats)-4)
	line := label + stats
	if barWidth >= 10 {
		done := int(frac * float64(barWidth))
		line = label + "[" + strings.Repeat("#", done) + strings.Repeat(".", barWidth-done) + "]  " + stats
	}
	if len(line) > width-1 {
		line = line[:max(width-1, 0)]
	}
	return line
}

// humanBytes prints n in binary units, like ls -lh and du -h do.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 5 {
		v /= unit
		i++
	}
	suffix := []string{"", "KiB", "MiB", "GiB", "TiB", "PiB"}[i]
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, suffix)
	}
	return fmt.Sprintf("%.0f %s", v, suffix)
}

// shortDuration is a duration for people: 45s, 3m10s, 2h05m, 3d.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours())/24)
}
