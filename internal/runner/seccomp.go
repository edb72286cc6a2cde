package runner

import (
	"fmt"
	"runtime"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// nativeArch maps GOARCH to the seccomp architecture of this binary's own
// platform. Only these are supported by the runner.
var nativeArch = map[string]specs.Arch{
	"amd64":   specs.ArchX86_64,
	"arm64":   specs.ArchAARCH64,
	"ppc64le": specs.ArchPPC64LE,
	"s390x":   specs.ArchS390X,
	"riscv64": specs.ArchRISCV64,
	"loong64": specs.ArchLOONGARCH64,
}

// defaultSeccomp returns Docker's default seccomp profile converted to the
// runtime-spec for s, whose capabilities must already be final: the moby
// converter keeps the syscalls a capability unlocks (e.g. the mount family
// for CAP_SYS_ADMIN) only when that capability is in the bounding set.
//
// The moby profile lists the native architecture plus its compatibility
// sub-architectures (x86 and x32 on amd64). bulwark keeps only the native
// one: syscalls entered through a 32-bit ABI (int 0x80, x32) then hit the
// filter's default action instead of being allowed, which removes a
// historically buggy kernel entry path for images that never use it. A
// 32-bit binary inside the image will therefore fail; that is deliberate.
func defaultSeccomp(s *specs.Spec) (*specs.LinuxSeccomp, error) {
	arch, ok := nativeArch[runtime.GOARCH]
	if !ok {
		return nil, fmt.Errorf("seccomp: no native architecture known for GOARCH %s", runtime.GOARCH)
	}
	prof, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("seccomp: convert Docker's default profile: %w", err)
	}
	prof.Architectures = []specs.Arch{arch}
	return prof, nil
}
