package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-dev/bulwark/internal/oci"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/image"
	"github.com/bulwark-dev/bulwark/internal/scan/catalog/rootfs"
	"github.com/bulwark-dev/bulwark/internal/scan/catalogcache"
	"github.com/bulwark-dev/bulwark/internal/scan/lint"
	"github.com/bulwark-dev/bulwark/internal/scan/sbom"
)

// scanSource is what `bulwark sbom` (and `bulwark scan`) read: an image in
// a registry (REF), an OCI image layout (--oci-layout DIR[:TAG]) or an
// extracted root filesystem (--rootfs DIR).
type scanSource struct {
	layout       string
	rootfs       string
	platform     string
	noCache      bool
	fromRegistry bool
}

func (s *scanSource) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.layout, "oci-layout", "", "scan the image in this OCI image layout, DIR or DIR:TAG (TAG: its org.opencontainers.image.ref.name; optional when the layout holds one image)")
	cmd.Flags().StringVar(&s.rootfs, "rootfs", "", "scan this extracted root filesystem directory (symlinks are never followed out of it)")
	cmd.Flags().StringVar(&s.platform, "platform", "", `platform to pick from a multi-platform image, OS/ARCH[/VARIANT] (default "linux/<this machine's architecture>")`)
	cmd.Flags().BoolVar(&s.noCache, "no-cache", false, "read every layer even if DATA/scan-cache holds this image's catalog, and do not store it")
	cmd.Flags().BoolVar(&s.fromRegistry, "from-registry", false, "REF only: use the SBOM and lint findings the registry (a bulwark server) stored when the image was pushed, instead of reading the layers; trusts the registry's catalog")
}

// scanned is what reading a source produced.
type scanned struct {
	SBOM *sbom.SBOM
	// Problems are the files that could not be read.
	Problems []string
	Image    *image.Image // nil for --rootfs
	Tag      string       // the tag REF or --oci-layout named
	Source   string
	// Cached says the catalog came from DATA/scan-cache; FromRegistry,
	// from the registry's scan API.
	Cached, FromRegistry bool
	// lint holds lint.Check's findings without the tag.
	lint []lint.Finding
}

// Findings are the image lint's findings.
func (s *scanned) Findings() []lint.Finding { return lint.WithTag(s.lint, s.Tag) }

// read catalogs the source named by args and the flags, with the image
// lint's analyzer in the same pass. An image's catalog is looked up in and
// stored to cache (nil: none).
func (s *scanSource) read(ctx context.Context, args []string, opts catalog.Options, cache *catalogcache.Cache) (*scanned, error) {
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
	if s.fromRegistry && len(args) == 0 {
		return nil, errors.New("--from-registry goes with REF: only a registry stores scans")
	}
	platform := image.DefaultPlatform()
	if s.platform != "" {
		p, err := image.ParsePlatform(s.platform)
		if err != nil {
			return nil, err
		}
		platform = p
	}
	out := &scanned{}
	la := lint.NewAnalyzer()
	if s.rootfs != "" {
		out.Source = s.rootfs
		sb, tree, err := catalog.Dir(ctx, s.rootfs, opts, la)
		if err != nil {
			return nil, err
		}
		out.SBOM, out.Problems = sb, problems(tree)
		out.lint = lint.Check(lint.Input{SBOM: sb, Tree: tree, Analyzer: la})
		return out, nil
	}
	var (
		img *image.Image
		err error
	)
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
		if err == nil && s.fromRegistry {
			defer img.Close()
			out.Image, out.Source, out.FromRegistry = img, img.Name, true
			return out, registryScan(ctx, out, ref)
		}
	}
	if err != nil {
		return nil, err
	}
	defer img.Close()
	out.Image, out.Source = img, img.Name
	if s.noCache {
		cache = nil
	}
	var key catalogcache.Key
	if cache != nil {
		key = catalogcache.Key{Manifest: img.Manifest.Digest, Producer: catalogProducer(opts.Tool),
			Options: fmt.Sprintf("max-file-size=%d", opts.MaxFileSize)}
		if e, err := cache.Get(key); err == nil {
			e.SBOM.Source.Name = img.Name
			out.SBOM, out.Problems, out.lint, out.Cached = e.SBOM, e.Problems, e.Lint, true
			return out, nil
		}
	}
	sb, tree, err := catalog.Image(ctx, img, opts, la)
	if err != nil {
		return nil, err
	}
	out.SBOM, out.Problems = sb, problems(tree)
	out.lint = lint.Check(lint.Input{SBOM: sb, Tree: tree, Analyzer: la, Config: &img.Config, RawConfig: img.ConfigBytes})
	if cache != nil {
		// A cache that cannot be written costs the next scan time, not
		// this one its result.
		cache.Put(&catalogcache.Entry{Key: key, SBOM: sb, Lint: out.lint, Problems: out.Problems})
	}
	return out, nil
}

// registryScan fills out with what the registry's scanner stored for the
// image (GET /scan/v1/sbom and /scan/v1/report on the registry's host),
// checking that it describes this manifest.
func registryScan(ctx context.Context, out *scanned, ref oci.ImageRef) error {
	c, err := scanClient(ref.Registry, "")
	if err != nil {
		return err
	}
	d := out.Image.Manifest.Digest
	b, err := c.SBOM(ctx, ref.Repository, d, "json")
	if err != nil {
		return fmt.Errorf("--from-registry: %w (is %s a bulwark server, and has it scanned %s@%s?)", err, ref.Registry, ref.Repository, d)
	}
	sb, err := sbom.Decode(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("--from-registry: the registry's SBOM of %s: %w", d, err)
	}
	if sb.Source.Digest != d {
		return fmt.Errorf("--from-registry: asked for the SBOM of %s, the registry answered with %q's", d, sb.Source.Digest)
	}
	res, err := c.Result(ctx, ref.Repository, d)
	if err != nil {
		return fmt.Errorf("--from-registry: %w", err)
	}
	sb.Source.Name = out.Image.Name
	out.SBOM, out.lint, out.Problems = sb, res.Lint, res.Problems
	return nil
}

// catalogProducer identifies this binary for the catalog cache: the
// version, and the executable's size and modification time, so that a
// rebuilt development binary ("dev") never reads its predecessor's
// catalogs.
func catalogProducer(tool string) string {
	exe, err := os.Executable()
	if err != nil {
		return tool + " unknown-executable"
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return tool + " unknown-executable"
	}
	return fmt.Sprintf("%s %d %d", tool, fi.Size(), fi.ModTime().UnixNano())
}

// scanCache is the catalog cache in the data directory, if the directory
// exists: reading an image does not create a data directory.
func scanCache(dataDir string) *catalogcache.Cache {
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return nil
	}
	return catalogcache.New(dataDir)
}

func problems(t *rootfs.Tree) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, p := range t.Problems {
		out = append(out, p.String())
	}
	return out
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
func reportProblems(w io.Writer, res *scanned) {
	if res == nil {
		return
	}
	if res.FromRegistry {
		fmt.Fprintf(w, "bulwark: catalog of %s as the registry stored it (made %s; without --from-registry the layers are read here)\n",
			res.SBOM.Source.Digest, res.SBOM.Created.Format(time.RFC3339))
	}
	if res.Cached {
		fmt.Fprintf(w, "bulwark: catalog of %s read from the scan cache (made %s; --no-cache reads the layers again)\n",
			res.SBOM.Source.Digest, res.SBOM.Created.Format(time.RFC3339))
	}
	const show = 10
	for i, p := range res.Problems {
		if i == show {
			fmt.Fprintf(w, "bulwark: and %d more files not read\n", len(res.Problems)-show)
			break
		}
		fmt.Fprintf(w, "bulwark: warning: %s\n", p)
	}
}

func newSBOMCmd() *cobra.Command {
	var (
		f       configFlags
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

--from-registry prints the SBOM a bulwark registry made when REF was
pushed (what its policy decisions used) instead of reading the layers.

--format json is bulwark's own form (docs/scanning.md), which the registry
stores and re-matches; cyclonedx is CycloneDX 1.5 JSON, spdx SPDX 2.3 JSON.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "json", "cyclonedx", "spdx":
			default:
				return fmt.Errorf("--format must be json, cyclonedx or spdx, not %q", format)
			}
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			opts := catalog.Options{Tool: "bulwark/" + version, MaxFileSize: maxFile << 20,
				Walk: rootfs.Options{Logger: slog.New(slog.DiscardHandler)}}
			res, err := src.read(cmd.Context(), args, opts, scanCache(cfg.Data))
			if err != nil {
				return err
			}
			reportProblems(cmd.ErrOrStderr(), res)
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
	f.register(cmd)
	src.register(cmd)
	cmd.Flags().StringVar(&format, "format", "json", "output format: json (bulwark's), cyclonedx (CycloneDX 1.5 JSON) or spdx (SPDX 2.3 JSON)")
	cmd.Flags().Int64Var(&maxFile, "max-file-size", catalog.DefaultMaxFileSize>>20, "package databases and manifests larger than this many MiB are not parsed (and reported)")
	return cmd
}
