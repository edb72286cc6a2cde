#!/usr/bin/env bash
# Runs the OCI Distribution Spec conformance suite against a freshly started
# `bulwark serve` (plain HTTP on a random loopback port, empty data dir) and
# prints `conformance: N passed, N failed[, N skipped]` as its last line.
# Exits non-zero if any case failed or the suite produced no JUnit report.
#
# Environment (all optional):
#   BULWARK_BIN             use this bulwark binary instead of building ./cmd/bulwark
#   CONFORMANCE_TARGET      bulwark (default), or distribution to run against
#                           Debian's docker-registry (the reference
#                           implementation, v2.8; it fails the newer 1.1 cases,
#                           which is useful to compare against or to check
#                           this script)
#   CONFORMANCE_PROFILE     default (the default): bulwark as configured out
#                           of the box, every toggle on except OCI_DATA_SPARSE,
#                           because by default bulwark refuses manifests whose
#                           blobs are absent (MANIFEST_BLOB_UNKNOWN);
#                           sparse: bulwark with allow_sparse_manifests and
#                           every toggle on, OCI_DATA_SPARSE included;
#                           auth: bulwark with authentication on (its
#                           default), the suite logging in as the bootstrap
#                           administrator (OCI_USERNAME/OCI_PASSWORD), every
#                           toggle on except OCI_DATA_SPARSE.
#                           default and sparse run with --auth=false.
#   CONFORMANCE_ONLY_FOCUS  run only the cases whose name starts with this
#                           prefix (OCI_FILTER_TEST), e.g.
#                           "OCI Conformance Test/sha256 blobs"
#   CONFORMANCE_LOG         suite log level: debug, info, warn (default), error
#   CONFORMANCE_TIMEOUT     seconds before the suite is killed (default 300;
#                           a healthy run takes well under a minute)
#   RESULTS_DIR             where junit.xml, report.html, results.yaml and the
#                           logs are kept (default .ci-results/conformance)
set -euo pipefail
export GOTOOLCHAIN=go1.26.11

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Resolve user-supplied paths against the caller's directory before cd.
RESULTS_DIR=$(realpath -m "${RESULTS_DIR:-$root/.ci-results/conformance}")
BULWARK_BIN=${BULWARK_BIN:+$(realpath -m "$BULWARK_BIN")}
cd "$root"

target=${CONFORMANCE_TARGET:-bulwark}
profile=${CONFORMANCE_PROFILE:-default}
case $profile in
default | sparse | auth) ;;
*)
	echo "conformance.sh: CONFORMANCE_PROFILE must be default, sparse or auth, not '$profile'" >&2
	exit 2
	;;
esac
case $target in
bulwark | distribution) ;;
*)
	echo "conformance.sh: CONFORMANCE_TARGET must be bulwark or distribution, not '$target'" >&2
	exit 2
	;;
esac

# The suite, pinned. This version is a plain Go program (`go build`, run
# `./conformance`); `go test` still works but is deprecated upstream.
conf_mod=github.com/opencontainers/distribution-spec/conformance
conf_version=v0.0.0-20260831232431-97274622c111
cache_dir=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bulwark-ci/conformance
conf_bin=$cache_dir/conformance-$conf_version

work=$(mktemp -d -t bulwark-conformance.XXXXXX)
# The auth profile's administrator password: random per run.
admin_password=conformance-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
server_pid=""
summary_printed=false

stop_server() {
	[[ -n $server_pid ]] || return 0
	kill "$server_pid" 2>/dev/null || true
	# Give it a few seconds to shut down cleanly, then force it.
	for _ in $(seq 50); do
		kill -0 "$server_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$server_pid" 2>/dev/null || true
	wait "$server_pid" 2>/dev/null || true
	server_pid=""
}

cleanup() {
	local rc=$?
	stop_server
	rm -rf "$work"
	# Whatever stopped us before the report was read (build error, server
	# that never came up, suite crash) still leaves a countable closing line.
	if [[ $summary_printed != true && $rc -ne 0 ]]; then
		echo "${CONFORMANCE_LABEL:-conformance}: did not produce a report (see above), counted as one failure"
		echo "${CONFORMANCE_LABEL:-conformance}: 0 passed, 1 failed"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step() { echo "==> $*"; }

# --- build the conformance suite (cached across runs) -----------------------
if [[ ! -x $conf_bin ]]; then
	step "building conformance suite $conf_version"
	mkdir -p "$cache_dir/mod"
	(
		cd "$cache_dir/mod"
		# A scratch module, so the suite's dependencies never touch our go.mod.
		export GOFLAGS=-mod=mod GOWORK=off
		[[ -f go.mod ]] || go mod init scratch >/dev/null 2>&1
		go get "$conf_mod@$conf_version"
		# Its version is normally taken from VCS info, absent in the module cache.
		go build -trimpath -ldflags "-X main.Version=$conf_version" -o "$conf_bin.tmp" "$conf_mod"
		mv "$conf_bin.tmp" "$conf_bin"
	)
fi

go build -o "$work/testsummary" ./scripts/testsummary

# --- start the registry under test ------------------------------------------
if [[ $target == bulwark ]]; then
	if [[ -z $BULWARK_BIN ]]; then
		step "building bulwark"
		CGO_ENABLED=0 go build -o "$work/bulwark" ./cmd/bulwark
		BULWARK_BIN=$work/bulwark
	fi
	health_path=/healthz
else
	command -v docker-registry >/dev/null || {
		echo "conformance.sh: docker-registry not installed (apt-get install docker-registry)" >&2
		exit 1
	}
	health_path=/v2/ # distribution has no health endpoint; /v2/ answers 200 without auth
fi

# Remove only our own files from earlier runs: RESULTS_DIR may be user-chosen.
mkdir -p "$RESULTS_DIR"
rm -f "$RESULTS_DIR"/{junit.xml,report.html,results.yaml,conformance.log,conformance.stderr.log,server.log}
server_log=$RESULTS_DIR/server.log

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() { # port
	local port=$1 data=$work/data
	rm -rf "$data"
	mkdir -p "$data"
	if [[ $target == bulwark ]]; then
		local sparse=false auth=false
		[[ $profile == sparse ]] && sparse=true
		[[ $profile == auth ]] && auth=true
		BULWARK_ALLOW_SPARSE_MANIFESTS=$sparse BULWARK_ADMIN_PASSWORD=$admin_password \
			"$BULWARK_BIN" serve --auth="$auth" --addr "127.0.0.1:$port" --data "$data" >>"$server_log" 2>&1 </dev/null &
	else
		cat >"$work/registry.yml" <<-EOF
			version: 0.1
			storage:
			  filesystem:
			    rootdirectory: $data
			  delete:
			    enabled: true
			http:
			  addr: 127.0.0.1:$port
		EOF
		docker-registry serve "$work/registry.yml" >>"$server_log" 2>&1 </dev/null &
	fi
	server_pid=$!
}

wait_healthy() { # port; fails if the server exits or is not ready within 60s
	local deadline=$((SECONDS + 60))
	while ((SECONDS < deadline)); do
		kill -0 "$server_pid" 2>/dev/null || return 1
		curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$1$health_path" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# A random port can be taken between our check and the server's bind, so
# retry a few times before giving up.
port=""
for attempt in 1 2 3; do
	p=$((20000 + RANDOM % 40000))
	port_in_use "$p" && continue
	step "starting $target on 127.0.0.1:$p (attempt $attempt)"
	start_server "$p"
	if wait_healthy "$p"; then
		port=$p
		break
	fi
	stop_server
done
if [[ -z $port ]]; then
	echo "conformance.sh: $target did not become healthy on $health_path; last lines of $server_log:" >&2
	tail -n 40 "$server_log" >&2 || true
	exit 1
fi

# --- run the suite ------------------------------------------------------------
step "running conformance suite against http://127.0.0.1:$port"
start=$SECONDS
set +e
(
	# Only the settings below count: drop any OCI_* from the caller's
	# environment (and a stray oci-conformance.yaml, by running in RESULTS_DIR).
	while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^OCI_')
	cd "$RESULTS_DIR"
	export OCI_VERSION=1.1 OCI_REGISTRY="127.0.0.1:$port" OCI_TLS=disabled \
		OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 \
		OCI_RESULTS_DIR="$RESULTS_DIR" OCI_LOG="${CONFORMANCE_LOG:-warn}" \
		OCI_FILTER_TEST="${CONFORMANCE_ONLY_FOCUS:-}"
	# Every API and data toggle on, including those that are off by default
	# for 1.1 (digest headers, upload cancel, ?tag= on manifest push, sparse
	# manifests): bulwark is meant to support them all. Sparse manifests only
	# in the sparse profile, where the server is configured to accept them.
	for t in PING PULL PUSH REFERRER \
		BLOBS_ATOMIC BLOBS_DELETE BLOBS_DIGEST_HEADER BLOBS_MOUNT_ANONYMOUS BLOBS_UPLOAD_CANCEL \
		MANIFESTS_ATOMIC MANIFESTS_DELETE MANIFESTS_DIGEST_HEADER MANIFESTS_TAG_PARAM \
		TAGS_ATOMIC TAGS_DELETE TAGS_LIST; do
		export "OCI_API_$t=true"
	done
	for t in IMAGE INDEX INDEX_LIST SPARSE ARTIFACT SUBJECT SUBJECT_MISSING ARTIFACT_LIST \
		SUBJECT_LIST DATA_FIELD NONDISTRIBUTABLE CUSTOM_FIELDS NO_LAYERS EMPTY_BLOB SHA512; do
		export "OCI_DATA_$t=true"
	done
	[[ $profile == sparse ]] || export OCI_DATA_SPARSE=false
	if [[ $profile == auth ]]; then
		export OCI_USERNAME=admin OCI_PASSWORD=$admin_password
	fi
	exec timeout --kill-after=30 "${CONFORMANCE_TIMEOUT:-300}" "$conf_bin"
) >"$RESULTS_DIR/conformance.log" 2>"$RESULTS_DIR/conformance.stderr.log" </dev/null
suite_rc=$?
set -e
echo "suite finished in $((SECONDS - start))s (exit $suite_rc)"
if ((suite_rc == 124 || suite_rc == 137)); then
	echo "conformance.sh: the suite was killed after ${CONFORMANCE_TIMEOUT:-300}s (CONFORMANCE_TIMEOUT); a request to the server probably hung" >&2
fi
stop_server

# The suite's own summary: totals, then per-API and per-data-type status.
sed -n '/^OCI Conformance Result:/,$p' "$RESULTS_DIR/conformance.log"

junit=$RESULTS_DIR/junit.xml
# With OCI_FILTER_TEST set, this suite version stops at results.yaml ("unknown
# status 0": filtered-out data has no status) and never writes junit.xml. For
# such focused runs fall back to the totals the suite printed, which count
# checks rather than test cases.
if [[ ! -s $junit && -n ${CONFORMANCE_ONLY_FOCUS:-} ]] &&
	grep -q '^OCI Conformance Result:' "$RESULTS_DIR/conformance.log"; then
	echo "note: focused run, the suite wrote no junit.xml; counts below are the suite's own totals"
	# Leaf results carry their errors on the following " - " lines.
	grep -E -B1 '^ +- ' "$RESULTS_DIR/conformance.log" | grep -E -A1 ': (FAIL|Error)$' | grep -v '^--$' | head -n 80 || true
	read -r pass fail skip < <(awk -F: '
		/^OCI Conformance Result:/ { t = 1 }
		t && /^  [A-Za-z]+\.*:/ { k = $1; gsub(/[ .]/, "", k); v = $2 + 0; n[k] = v }
		END { print n["Pass"] + 0, n["FAIL"] + n["Error"], n["Skip"] + n["Disabled"] }' "$RESULTS_DIR/conformance.log")
	line="${CONFORMANCE_LABEL:-conformance}: $pass passed, $fail failed"
	((skip == 0)) || line+=", $skip skipped"
	echo "$line"
	summary_printed=true
	if ((fail > 0 || pass == 0)); then
		exit 1
	fi
	exit 0
fi
if [[ ! -s $junit ]]; then
	echo "conformance.sh: the suite wrote no $junit (exit $suite_rc); its output ends with:" >&2
	tail -n 20 "$RESULTS_DIR/conformance.log" "$RESULTS_DIR/conformance.stderr.log" >&2 || true
	exit 1
fi

echo "reports: $RESULTS_DIR/{junit.xml,report.html,results.yaml}, server log: $server_log"
set +e
"$work/testsummary" junit -label "${CONFORMANCE_LABEL:-conformance}" -max-failures 40 "$junit"
sum_rc=$?
set -e
# testsummary exits 2 when the report cannot be read: no closing line then.
[[ $sum_rc -eq 2 ]] || summary_printed=true
if [[ $sum_rc -eq 0 && $suite_rc -ne 0 ]]; then
	echo "conformance.sh: the suite exited $suite_rc although its report lists no failure" >&2
	exit 1
fi
exit "$sum_rc"
