package rootfs

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
)

// WalkDir walks the root filesystem at dir. Every file is opened through
// os.Root, so no symlink (and no ".." in one) leads out of dir; symlinks
// are not followed at all, and directories on other filesystems (a /proc
// or /sys mounted in it) are not entered, like find -xdev. File.Layer is
// -1.
func WalkDir(ctx context.Context, dir string, analyzers []Analyzer, opts Options) (*Tree, error) {
	opts = opts.withDefaults()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	st, err := root.Stat(".")
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	dev := devOf(st)
	f := newFold(analyzers, opts)
	n := 0
	err = fs.WalkDir(root.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		p := path.Clean("/" + rel)
		if err != nil {
			if rel == "." {
				return err
			}
			f.problem(p, -1, err)
			return nil
		}
		if n++; n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if d.IsDir() {
			if rel == "." {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				f.problem(p, -1, err)
				return fs.SkipDir
			}
			if devOf(info) != dev {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			f.problem(p, -1, err)
			return nil
		}
		file := File{Path: p, Mode: info.Mode() &^ fs.ModeType, Size: info.Size(), Layer: -1}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			file.UID, file.GID = int(sys.Uid), int(sys.Gid)
		}
		wants := f.wanted(&file)
		if len(wants) == 0 {
			return nil
		}
		return f.analyzeFile(ctx, root, rel, file, wants)
	})
	if err != nil {
		return nil, err
	}
	return f.tree(), nil
}

func (f *fold) analyzeFile(ctx context.Context, root *os.Root, rel string, file File, wants []int) error {
	fh, err := root.Open(rel)
	if err != nil {
		f.problem(file.Path, -1, err)
		return nil
	}
	defer fh.Close()
	// The file may have changed since the directory was read: analyze
	// what was opened.
	st, err := fh.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.problem(file.Path, -1, fmt.Errorf("no longer a regular file (%v)", err))
		return nil
	}
	file.Size, file.Mode = st.Size(), st.Mode()&^fs.ModeType
	size := file.Size
	return f.analyze(ctx, file, wants, nil, func() (io.Reader, error) {
		return io.NewSectionReader(fh, 0, size), nil
	})
}

func devOf(info fs.FileInfo) uint64 {
	if sys, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev)
	}
	return 0
}
