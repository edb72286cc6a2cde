package catalog

import (
	"bytes"
	"debug/buildinfo"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// GoBinary is the build information of a Go executable.
type GoBinary struct {
	// GoVersion is the toolchain that built it, "go1.22.1" (a suffix such
	// as " X:boringcrypto" removed).
	GoVersion string
	// Main is the main module; its Version is "(devel)" when the build had
	// no version control information.
	Main GoModule
	// Deps are the modules linked in, replacements applied.
	Deps []GoModule
}

// GoModule is one module of a Go binary.
type GoModule struct {
	Path    string
	Version string
}

// ErrNotGo is returned for an executable without Go build information.
var ErrNotGo = errors.New("not a Go executable")

// errOldGo: the build information of a binary older than Go 1.18 is found
// through pointers into the file, which needs random access.
var errOldGo = errors.New("Go binary older than Go 1.18: build info needs random access (scan the extracted root with --rootfs)")

var (
	elfMagic       = []byte("\x7fELF")
	buildInfoMagic = []byte("\xff Go buildinf:")
)

const (
	buildInfoAlign      = 16
	buildInfoHeaderSize = 32
	// maxBuildInfo bounds the version and module strings read after the
	// header; the module list of a large program is tens of KiB.
	maxBuildInfo = 4 << 20
)

// ReadGoBinary reads the build information of an executable with random
// access, through the standard library's debug/buildinfo.
func ReadGoBinary(r io.ReaderAt) (*GoBinary, error) {
	var head [4]byte
	if _, err := r.ReadAt(head[:], 0); err != nil || !bytes.Equal(head[:], elfMagic) {
		return nil, ErrNotGo
	}
	bi, err := buildinfo.Read(r)
	if err != nil {
		if strings.Contains(err.Error(), "not a Go executable") {
			return nil, ErrNotGo
		}
		return nil, fmt.Errorf("go buildinfo: %w", err)
	}
	return fromBuildInfo(bi), nil
}

// ScanGoBinary finds the build information of an ELF executable in a
// stream, for layer tars, which cannot seek: Go 1.18 and later write the
// header ("\xff Go buildinf:", 16-byte aligned) followed by the version
// and module strings inline, which runtime/debug.ParseBuildInfo then
// parses, the format debug/buildinfo reads. It reads at most limit bytes.
// buf is scratch space of at least 64 KiB, reused between calls.
func ScanGoBinary(r io.Reader, limit int64, buf []byte) (*GoBinary, error) {
	r = io.LimitReader(r, limit)
	if len(buf) < 64<<10 {
		buf = make([]byte, 64<<10)
	}
	n, err := io.ReadFull(r, buf[:4])
	if err != nil || !bytes.Equal(buf[:n], elfMagic) {
		return nil, ErrNotGo
	}
	const keep = len("\xff Go buildinf:") - 1
	off := int64(0) // file offset of buf[0]
	have := n
	for {
		m, err := io.ReadFull(r, buf[have:])
		have += m
		data := buf[:have]
		for i := 0; ; {
			j := bytes.Index(data[i:], buildInfoMagic)
			if j < 0 {
				break
			}
			i += j
			if (off+int64(i))%buildInfoAlign == 0 {
				return readInlineBuildInfo(io.MultiReader(bytes.NewReader(data[i:]), r))
			}
			i++
		}
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, ErrNotGo
			}
			return nil, err
		}
		// Keep the tail that could begin the magic; move it to the front
		// at an offset that preserves the alignment arithmetic.
		cut := have - keep
		copy(buf, data[cut:])
		off += int64(cut)
		have = keep
	}
}

// readInlineBuildInfo parses the header at the start of r.
func readInlineBuildInfo(r io.Reader) (*GoBinary, error) {
	var hdr [buildInfoHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, ErrNotGo
	}
	const flagsVersionInl = 0x2
	if hdr[15]&flagsVersionInl == 0 {
		return nil, errOldGo
	}
	br := &byteReader{r: io.LimitReader(r, maxBuildInfo)}
	vers, err := readVarString(br)
	if err != nil {
		return nil, fmt.Errorf("go buildinfo: version: %w", err)
	}
	mod, err := readVarString(br)
	if err != nil {
		return nil, fmt.Errorf("go buildinfo: modules: %w", err)
	}
	// The module string is framed by 16-byte sentinels.
	if len(mod) >= 33 && mod[len(mod)-17] == '\n' {
		mod = mod[16 : len(mod)-16]
	} else {
		mod = ""
	}
	bi, err := debug.ParseBuildInfo(mod)
	if err != nil {
		return nil, fmt.Errorf("go buildinfo: %w", err)
	}
	bi.GoVersion = vers
	return fromBuildInfo(bi), nil
}

type byteReader struct {
	r io.Reader
	b [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
	_, err := io.ReadFull(b.r, b.b[:])
	return b.b[0], err
}

func readVarString(br *byteReader) (string, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return "", err
	}
	if n > maxBuildInfo {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	s := make([]byte, n)
	if _, err := io.ReadFull(br.r, s); err != nil {
		return "", err
	}
	return string(s), nil
}

func fromBuildInfo(bi *debug.BuildInfo) *GoBinary {
	g := &GoBinary{GoVersion: bi.GoVersion}
	if i := strings.IndexAny(g.GoVersion, " \t"); i >= 0 {
		g.GoVersion = g.GoVersion[:i]
	}
	if bi.Main.Path != "" {
		g.Main = GoModule{Path: bi.Main.Path, Version: bi.Main.Version}
		if g.Main.Version == "" {
			g.Main.Version = "(devel)"
		}
	}
	for _, d := range bi.Deps {
		m := GoModule{Path: d.Path, Version: d.Version}
		if r := d.Replace; r != nil {
			// The replacement is what was compiled; a directory
			// replacement has no version.
			m = GoModule{Path: r.Path, Version: r.Version}
			if m.Version == "" {
				m = GoModule{Path: d.Path, Version: "(devel)"}
			}
		}
		if m.Path != "" && m.Version != "" {
			g.Deps = append(g.Deps, m)
		}
	}
	return g
}
