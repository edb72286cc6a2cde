package catalog

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
)

// The scans docs/benchmarks.md reports: the debootstrap bookworm minbase
// root as a directory and as a one-layer OCI image (gzip, 93 MB, 206 MB
// of files).
//
//	go test ./internal/scan/catalog/ -run '^$' -bench Bookworm -benchmem

func BenchmarkBookwormRootfs(b *testing.B) {
	root := filepath.Join(bookworm(b), "rootfs")
	ctx := context.Background()
	for b.Loop() {
		s, _, err := Dir(ctx, root, Options{})
		if err != nil || len(s.Packages) < 80 {
			b.Fatal(err, len(s.Packages))
		}
	}
}

func BenchmarkBookwormImage(b *testing.B) {
	layout := filepath.Join(bookworm(b), "oci")
	ctx := context.Background()
	for b.Loop() {
		img, err := image.Layout(ctx, layout, "", image.Platform{OS: "linux", Architecture: runtime.GOARCH})
		if err != nil {
			b.Fatal(err)
		}
		s, _, err := Image(ctx, img, Options{})
		img.Close()
		if err != nil || len(s.Packages) < 80 {
			b.Fatal(err, len(s.Packages))
		}
	}
}

// TestScanPeakRSS catalogs the bookworm image and root in a child process
// (this test binary, re-executed) and reports the child's wall time and
// peak RSS; it fails above the memory target of 60 MB.
func TestScanPeakRSS(t *testing.T) {
	if what := os.Getenv("BULWARK_RSS_CHILD"); what != "" {
		fx := os.Getenv("BULWARK_RSS_FIXTURE")
		ctx := context.Background()
		var err error
		if what == "image" {
			var img *image.Image
			img, err = image.Layout(ctx, filepath.Join(fx, "oci"), "", image.Platform{OS: "linux", Architecture: runtime.GOARCH})
			if err == nil {
				_, _, err = Image(ctx, img, Options{})
			}
		} else {
			_, _, err = Dir(ctx, filepath.Join(fx, "rootfs"), Options{})
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	fx := bookworm(t)
	for _, what := range []string{"rootfs", "image"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestScanPeakRSS$", "-test.count=1")
		cmd.Env = append(os.Environ(), "BULWARK_RSS_CHILD="+what, "BULWARK_RSS_FIXTURE="+fx)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		rssMB := float64(ru.Maxrss) / 1024 // KiB on Linux
		t.Logf("%s: wall %v (process, including start), peak RSS %.1f MB", what, wall.Round(time.Millisecond), rssMB)
		if rssMB > 60 {
			t.Errorf("%s: peak RSS %.1f MB over the 60 MB target", what, rssMB)
		}
	}
}
