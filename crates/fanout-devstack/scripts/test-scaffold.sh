#!/usr/bin/env bash
# make test-scaffold: `make new-consumer` in a scratch clone of this checkout's HEAD, as a team
# would run it, then proves the consumer it wrote: `make test-consumer` passes (timed from the
# command), `git status` shows only its folder, its registry file and CODEOWNERS (and the
# package cargo adds to Cargo.lock), and the demo and the reliability scenarios run it with
# the shipped consumers. SCAFFOLD_E2E=1 also runs `make e2e` there (it deploys every
# registered consumer's stack, the new one too). The clone shares this checkout's target
# directory and tools, so only the new crate compiles; it installs the CDK app's packages of
# its own (npm ci empties a node_modules it is given through a link).
set -euo pipefail
root=$(pwd)
name=plan-metrics
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
scratch=$work/p
git clone -q "$root" "$scratch"
ln -s "$root/.tools" "$scratch/.tools"
ln -s "$root/target" "$scratch/target"
cd "$scratch"

started=$(date +%s)
make --no-print-directory new-consumer NAME=$name TEAM=@acme/growth
make --no-print-directory test-consumer C=$name
elapsed=$(( $(date +%s) - started ))

changed=$(git status --porcelain --untracked-files=normal | sort)
expected=$(printf '%s\n' " M .github/CODEOWNERS" " M Cargo.lock" "?? crates/$name/" "?? infra/consumers/$name.json" | sort)
if [ "$changed" != "$expected" ]; then
  echo "test-scaffold: the scaffold changed more than its folder, registry file and CODEOWNERS:"
  echo "$changed"
  exit 1
fi
read -r added removed _ < <(git diff --numstat Cargo.lock)
if [ "$removed" != 0 ] || ! git diff Cargo.lock | grep -q "^+name = \"$name\""; then
  echo "test-scaffold: Cargo.lock changed beyond the new package ($added added, $removed removed)"
  exit 1
fi

demo=$(make --no-print-directory demo)
echo "$demo" | grep -E "^$name +[1-9]" || { echo "$demo"; echo "test-scaffold: the demo shows no effect of $name"; exit 1; }

target/debug/fanout-local with -- "$NEXTEST_BIN" nextest run -p fanout-devstack --test reliability
rows=$(grep -c "| $name |" target/reliability.md || true)
[ "$rows" -gt 10 ] || { echo "test-scaffold: $name has $rows rows in the reliability scenarios"; exit 1; }

if [ -n "${SCAFFOLD_E2E:-}" ]; then
  make --no-print-directory e2e
fi
echo "test-scaffold: PASS: make new-consumer to a green make test-consumer in ${elapsed} s; $name in the demo and in $rows reliability rows; git status: its folder, its registry file, CODEOWNERS, Cargo.lock"
