#!/usr/bin/env bash
# The whole test suite, runnable on a fresh machine (as root, for apt):
#   1. installs the system packages the tests use (skipped when present),
#   2. gofmt check, go vet,
#   3. go test ./... (readable output; full JSON log in .ci-results/),
#   4. the OCI conformance suite against a real `bulwark serve`
#      (scripts/conformance.sh).
# Every step runs even if an earlier one failed; the summary comes last, and
# the exit status is non-zero if anything failed.
#
# Environment (optional):
#   TEST_SKIP_CONFORMANCE=1  skip step 4 (quick local runs; never in CI)
#   GO_TEST_FLAGS            extra flags for go test, e.g. "-run TestFoo -v"
set -euo pipefail
export GOTOOLCHAIN=go1.26.11
cd "$(dirname "${BASH_SOURCE[0]}")/.."

results=.ci-results
mkdir -p "$results"
work=$(mktemp -d -t bulwark-test.XXXXXX)
policy_rc_created=false

cleanup() {
	if [[ $policy_rc_created == true ]]; then
		rm -f /usr/sbin/policy-rc.d
	fi
	rm -rf "$work"
}
trap cleanup EXIT

step() { echo; echo "==> $*"; }

# --- 1. system packages -----------------------------------------------------
# curl is used by conformance.sh to poll the server; it is in the base image
# but listed so a leaner machine still works.
packages=(docker-registry skopeo docker.io runc busybox-static curl openssl debootstrap)

ensure_packages() {
	local missing=() p
	for p in "${packages[@]}"; do
		if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi

	step "installing ${missing[*]}"
	if [[ $(id -u) -ne 0 ]]; then
		echo "test.sh: need root to install ${missing[*]}; install them and rerun" >&2
		return 1
	fi
	# docker.io and docker-registry try to start their services from the
	# postinst; without an init system that fails the install. A
	# policy-rc.d exiting 101 tells invoke-rc.d not to start anything.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\n# temporary, from bulwark scripts/test.sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy_rc_created=true
	fi
	# Lock::Timeout waits for another apt/dpkg run instead of failing.
	local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
	if ! { "${apt[@]}" update &&
		DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y "${packages[@]}"; } \
		</dev/null >"$results/apt.log" 2>&1; then
		tail -n 30 "$results/apt.log" >&2
		echo "test.sh: apt-get failed, full log in $results/apt.log" >&2
		return 1
	fi
	if [[ $policy_rc_created == true ]]; then
		rm -f /usr/sbin/policy-rc.d
		policy_rc_created=false
	fi
	echo "installed (log: $results/apt.log)"
}

step "system packages"
ensure_packages
echo "ok: ${packages[*]}"

failed=false
fmt_status=ok
vet_status=ok

# --- 2. gofmt, go vet ---------------------------------------------------------
step "gofmt"
# The toolchain's own gofmt, so formatting matches GOTOOLCHAIN.
gofmt_bin=$(go env GOROOT)/bin/gofmt
if ! unformatted=$("$gofmt_bin" -l . 2>&1) || [[ -n $unformatted ]]; then
	echo "$unformatted"
	echo "these files need gofmt -w (or have syntax errors)"
	fmt_status=FAILED
	failed=true
else
	echo ok
fi

step "go vet ./..."
if go vet ./...; then
	echo ok
else
	vet_status=FAILED
	failed=true
fi

# --- interop tools ------------------------------------------------------------
# The Notary Project CLI, to check that bulwark's signatures and notation's
# interoperate (TestNotationCLIInterop). Built once from the Go module proxy
# and cached; its module refuses `go install`, so it is built inside the
# downloaded module.
notation_version=v1.3.2
tools_dir=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bulwark-ci/bin
export NOTATION_BIN=$tools_dir/notation-$notation_version
if [[ ! -x $NOTATION_BIN ]]; then
	step "building notation $notation_version (interop tests)"
	mkdir -p "$tools_dir"
	notation_dir=$(go mod download -json "github.com/notaryproject/notation@$notation_version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [[ -z $notation_dir ]] || ! (cd "$notation_dir" && GOFLAGS=-mod=mod go build -o "$NOTATION_BIN.tmp" ./cmd/notation); then
		echo "test.sh: could not build notation $notation_version; TestNotationCLIInterop will fail" >&2
	else
		mv "$NOTATION_BIN.tmp" "$NOTATION_BIN"
	fi
fi

# cosign, for TestCosignThroughRegistry (bulwark's cosign signatures and
# cosign's, both ways). `go install` into a temporary GOBIN, then moved into
# place, so an interrupted build never leaves a half-written binary. About
# 7 minutes cold (a large module graph); cached afterwards.
cosign_version=v2.6.5
export COSIGN_BIN=$tools_dir/cosign-$cosign_version
if [[ ! -x $COSIGN_BIN ]]; then
	step "building cosign $cosign_version (interop tests)"
	mkdir -p "$tools_dir"
	cosign_gobin=$(mktemp -d "$work/cosign-bin.XXXXXX")
	if ! GOBIN=$cosign_gobin go install "github.com/sigstore/cosign/v2/cmd/cosign@$cosign_version"; then
		echo "test.sh: could not build cosign $cosign_version; TestCosignThroughRegistry will fail" >&2
	else
		mv "$cosign_gobin/cosign" "$COSIGN_BIN"
	fi
fi

# The Debian bookworm minbase image the scanner tests read (debootstrap from
# Debian's mirror, about 3 minutes cold; cached like the tools above).
step "test fixtures"
if ! scripts/fixtures.sh bookworm-minbase; then
	echo "test.sh: could not build the bookworm-minbase fixture; the scanner tests will fail" >&2
fi

# --- 3. go test ---------------------------------------------------------------
step "go test ./..."
gotest_summary=$results/gotest.summary
rm -f "$gotest_summary"
if go build -o "$work/testsummary" ./scripts/testsummary; then
	# -json gives exact pass/fail counts; testsummary turns it back into the
	# usual `ok`/`FAIL` lines plus the output of failing tests.
	set +e
	# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
	go test -json -count=1 -timeout 20m ${GO_TEST_FLAGS:-} ./... 2>&1 |
		tee "$results/gotest.json" |
		"$work/testsummary" gotest -label gotest -summary "$gotest_summary"
	rcs=("${PIPESTATUS[@]}")
	set -e
	if [[ ${rcs[0]} -ne 0 || ${rcs[2]} -ne 0 ]]; then
		failed=true
	fi
	echo "full go test log: $results/gotest.json"
else
	echo "test.sh: cannot build scripts/testsummary, so go test was not run" >&2
fi
if [[ -s $gotest_summary ]]; then
	gotest_line=$(cat "$gotest_summary")
else
	gotest_line="gotest: 0 passed, 1 failed"
	failed=true
fi

# --- 4. conformance -------------------------------------------------------------
conformance_lines=()
conformance_line=""
if [[ ${TEST_SKIP_CONFORMANCE:-} == 1 ]]; then
	step "conformance: skipped (TEST_SKIP_CONFORMANCE=1)"
else
	# Three passes (see CONFORMANCE_PROFILE in conformance.sh): the registry
	# without authentication, every toggle but sparse manifests (which it
	# refuses by design); with allow_sparse_manifests and every toggle; and
	# with authentication on, the suite logged in.
	total_pass=0 total_fail=0
	for profile in default sparse auth; do
		label=conformance-$profile
		step "conformance, $profile profile (scripts/conformance.sh)"
		set +e
		CONFORMANCE_PROFILE=$profile CONFORMANCE_LABEL=$label RESULTS_DIR="$results/$label" \
			scripts/conformance.sh 2>&1 | tee "$results/$label.out"
		conf_rc=${PIPESTATUS[0]}
		set -e
		((conf_rc == 0)) || failed=true
		line=$(grep -E "^$label: [0-9]+ passed, [0-9]+ failed" "$results/$label.out" | tail -n 1 || true)
		if [[ -z $line ]]; then
			line="$label: 0 passed, 1 failed"
			failed=true
		fi
		conformance_lines+=("$line")
		read -r p f < <(sed -E 's/^[^:]+: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' <<<"$line")
		total_pass=$((total_pass + p)) total_fail=$((total_fail + f))
	done
	conformance_line="conformance: $total_pass passed, $total_fail failed"
fi

# --- summary ----------------------------------------------------------------------
step "summary"
echo "gofmt: $fmt_status"
echo "go vet: $vet_status"
echo "$gotest_line"
for l in "${conformance_lines[@]}"; do echo "$l"; done
[[ -z $conformance_line ]] || echo "$conformance_line"
if [[ $failed == true ]]; then
	exit 1
fi
