package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// scanSource is what `bulwark sbom` (and `bulwark scan`) read: an image in
// a registry (REF), an OCI image layout (--oci-layout DIR[:TAG]) or an
// extracted root filesystem (--rootfs DIR).
type scanSource struct {
	layout   string
	rootfs   string
	platform string
}

func (s *scanSource) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.layout, "oci-layout", "", "scan the image in this OCI image layout, DIR or DIR:TAG (TAG: its org.opencontainers.image.ref.name; optional when the layout holds one image)")
	cmd.Flags().StringVar(&s.rootfs, "rootfs", "", "scan this extracted root filesystem directory (symlinks are never followed out of it)")
	cmd.Flags().StringVar(&s.platform, "platform", "", `platform to pick from a multi-platform image, OS/ARCH[/VARIANT] (default "linux/<this machine's architecture>")`)
}

// scanned is what reading a source produced.
type scanned struct {
	SBOM   *sbom.SBOM
	Tree   *rootfs.Tree
	Lint   *lint.Analyzer
	Image  *image.Image // nil for --rootfs
	Tag    string       // the tag REF or --oci-layout named
	Source string
}

// Findings runs the image lint over what was read.
func (s *scanned) Findings() []lint.Finding {
	in := lint.Input{SBOM: s.SBOM, Tree: s.Tree, Analyzer: s.Lint, Tag: s.Tag}
	if s.Image != nil {
		in.Config, in.RawConfig = &s.Image.Config, s.Image.ConfigBytes
	}
	return lint.Check(in)
}

// read catalogs the source named by args and the flags, with the image
// lint's analyzer in the same pass.
func (s *scanSource) read(ctx context.Context, args []string, opts catalog.Options) (*scanned, error) {
	n := len(args)
	if s.layout != "" {
		n++
	}
	if s.rootfs != "" {
		n++
	}
	if n != 1 {
		return nil, errors.New("name exactly one of REF, --oci-layout DIR or --rootfs DIR")
	}
	platform := image.DefaultPlatform()
	if s.platform != "" {
		p, err := image.ParsePlatform(s.platform)
		if err != nil {
			return nil, err
		}
		platform = p
	}
	out := &scanned{Lint: lint.NewAnalyzer()}
	var err error
	if s.rootfs != "" {
		out.Source = s.rootfs
		out.SBOM, out.Tree, err = catalog.Dir(ctx, s.rootfs, opts, out.Lint)
		return out, err
	}
	var img *image.Image
	if s.layout != "" {
		dir, tag := splitLayoutTag(s.layout)
		out.Tag = tag
		img, err = image.Layout(ctx, dir, tag, platform)
	} else {
		ref, perr := parseRemoteRef(args[0])
		if perr != nil {
			return nil, perr
		}
		out.Tag = ref.Tag
		client, cerr := registryClient()
		if cerr != nil {
			return nil, cerr
		}
		img, err = image.Fetch(ctx, client, ref, platform)
	}
	if err != nil {
		return nil, err
	}
	defer img.Close()
	out.Image, out.Source = img, img.Name
	out.SBOM, out.Tree, err = catalog.Image(ctx, img, opts, out.Lint)
	return out, err
}

// splitLayoutTag splits DIR:TAG; a colon that belongs to the path (no
// valid tag after it) stays in DIR.
func splitLayoutTag(s string) (dir, tag string) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return s, ""
	}
	t := s[i+1:]
	if t == "" || strings.ContainsAny(t, "/\\") {
		return s, ""
	}
	return s[:i], t
}

// reportProblems prints what could not be read, once, on stderr: a scan
// that skipped a database must say so.
func reportProblems(w io.Writer, t *rootfs.Tree) {
	if t == nil || len(t.Problems) == 0 {
		return
	}
	const show = 10
	for i, p := range t.Problems {
		if i == show {
			fmt.Fprintf(w, "bulwark: and %d more files not read\n", len(t.Problems)-show)
			break
		}
		fmt.Fprintf(w, "bulwark: warning: %s\n", p)
	}
}

func newSBOMCmd() *cobra.Command {
	var (
		src     scanSource
		format  string
		maxFile int64
	)
	cmd := &cobra.Command{
		Use:   "sbom REF | --oci-layout DIR[:TAG] | --rootfs DIR [--format json|cyclonedx|spdx]",
		Short: "List the packages in an image or root filesystem (SBOM)",
		Long: `Catalog the packages installed in an image and print its software bill of
materials: dpkg (including distroless status.d), apk, Go executables (main
module, dependencies and the Go standard library), npm (node_modules) and
Python (*.dist-info). Every package carries a purl, its Debian or Alpine
source package, the files that show it and, for images, the layer that
introduced it.

Images are read layer by layer straight from their (verified) blobs, with
nothing extracted to disk; a registry reference is pulled with the
credentials 'docker login' and 'bulwark login' store.

  bulwark sbom 127.0.0.1:5000/team/app:v1
  bulwark sbom --oci-layout ./layout:v1 --format cyclonedx > app.cdx.json
  bulwark sbom --rootfs /var/lib/machines/web --format spdx

--format json is bulwark's own form (docs/scanning.md), which the registry
stores and re-matches; cyclonedx is CycloneDX 1.5 JSON, spdx SPDX 2.3 JSON.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "json", "cyclonedx", "spdx":
			default:
				return fmt.Errorf("--format must be json, cyclonedx or spdx, not %q", format)
			}
			opts := catalog.Options{Tool: "bulwark/" + version, MaxFileSize: maxFile << 20,
				Walk: rootfs.Options{Logger: slog.New(slog.DiscardHandler)}}
			res, err := src.read(cmd.Context(), args, opts)
			if err != nil {
				return err
			}
			reportProblems(cmd.ErrOrStderr(), res.Tree)
			w := cmd.OutOrStdout()
			switch format {
			case "cyclonedx":
				return res.SBOM.EncodeCycloneDX(w)
			case "spdx":
				return res.SBOM.EncodeSPDX(w)
			}
			return res.SBOM.Encode(w)
		},
	}
	src.register(cmd)
	cmd.Flags().StringVar(&format, "format", "json", "output format: json (bulwark's), cyclonedx (CycloneDX 1.5 JSON) or spdx (SPDX 2.3 JSON)")
	cmd.Flags().Int64Var(&maxFile, "max-file-size", catalog.DefaultMaxFileSize>>20, "package databases and manifests larger than this many MiB are not parsed (and reported)")
	return cmd
}
