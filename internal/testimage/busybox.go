package testimage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Busybox writes a runnable busybox image into the OCI layout at dir and
// returns it. The image has a single layer holding /bin/busybox (copied from
// the host, which must be a static binary, e.g. Debian's busybox-static) and
// a /bin/<applet> symlink for every applet that `busybox --list` reports;
// its config runs /bin/sh. The platform architecture is taken from the ELF
// header of the binary, so it is correct even for a foreign busybox.
//
// ctx bounds the `busybox --list` invocation.
func Busybox(ctx context.Context, dir string, opts ...Option) (Image, error) {
	o := newOptions(opts)
	bin, err := os.ReadFile(o.busyboxPath)
	if err != nil {
		return Image{}, fmt.Errorf("testimage: reading busybox: %w", err)
	}
	arch, err := staticELFArch(bin)
	if err != nil {
		return Image{}, fmt.Errorf("testimage: %s: %w", o.busyboxPath, err)
	}
	applets, err := busyboxApplets(ctx, o.busyboxPath)
	if err != nil {
		return Image{}, err
	}

	w, err := newWriter(dir, o)
	if err != nil {
		return Image{}, err
	}
	entries := []entry{{hdr: w.header(tar.TypeDir, "bin/", 0o755)}}
	h := w.header(tar.TypeReg, "bin/busybox", 0o755)
	h.Size = int64(len(bin))
	entries = append(entries, entry{hdr: h, data: bin})
	for _, a := range applets {
		// Relative targets keep the layer valid wherever it is unpacked.
		l := w.header(tar.TypeSymlink, "bin/"+a, 0o777)
		l.Linkname = "busybox"
		entries = append(entries, entry{hdr: l})
	}
	if err := w.addLayer("testimage: busybox", func(tw *tar.Writer) error { return writeEntries(tw, entries) }); err != nil {
		return Image{}, err
	}
	return w.finish(arch, v1.ImageConfig{
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Cmd: []string{"/bin/sh"},
	})
}

// busyboxApplets runs `busybox --list` and returns the applet names, sorted
// and de-duplicated. Names that cannot be a single path element are dropped.
func busyboxApplets(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, bin, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("testimage: %s --list: %w", bin, err)
	}
	var applets []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		a := strings.TrimSpace(sc.Text())
		if a == "" || a == "busybox" || a == "." || a == ".." || strings.Contains(a, "/") {
			continue
		}
		applets = append(applets, a)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("testimage: %s --list printed no applets", bin)
	}
	slices.Sort(applets)
	return slices.Compact(applets), nil
}

// elfArch maps ELF machines to GOARCH-style OCI architecture names.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
}

// staticELFArch checks that bin is a statically linked ELF executable (no
// program interpreter, no DT_NEEDED libraries) and returns its architecture.
// A dynamic busybox would be useless inside an image with no libc.
func staticELFArch(bin []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("not statically linked (has a program interpreter)")
		}
	}
	// ImportedLibraries fails on binaries without a dynamic section, which
	// is fine: no section means no libraries.
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		return "", fmt.Errorf("not statically linked (needs %v)", libs)
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return "", fmt.Errorf("unsupported ELF machine %v", f.Machine)
	}
	return arch, nil
}
