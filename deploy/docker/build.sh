#!/bin/sh
# The relaynet image's build steps, runnable anywhere (the Dockerfile runs them; so does
# tests/deploy/test_image_build.py, in a fresh venv as a numeric non-root uid):
#
#   deploy/docker/build.sh SOURCE_DIR VENV_DIR
#
# 1. a venv at VENV_DIR; 2. relaynet from SOURCE_DIR installed into it (not editable), the C
# accelerator of the claim trie (protocol/_trie_accel.c) compiled — a missing compiler fails
# the build instead of silently falling back to pure Python; 3. the result checked: the
# accelerator imports and is the one in use, and `relaynet --version` runs.
# PIP_* variables pass through (an index, a cache directory, --no-index with find-links).
set -eu
SRC=${1:?usage: build.sh SOURCE_DIR VENV_DIR}
VENV=${2:?usage: build.sh SOURCE_DIR VENV_DIR}
PYTHON=${PYTHON:-python3}

command -v "${CC:-cc}" >/dev/null 2>&1 || { echo "build.sh: no C compiler (${CC:-cc}): the trie accelerator cannot be built" >&2; exit 1; }
"$PYTHON" -m venv "$VENV"
# A build tree of our own: the source may be read-only (a bind mount) or owned by someone else.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for part in pyproject.toml setup.py README.md protocol session ledger rollups relayer gateway relaynet; do
    cp -R "$SRC/$part" "$WORK/"
done
find "$WORK" -name '__pycache__' -prune -exec rm -rf {} + -o -name '*.so' -exec rm -f {} +
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$WORK"
cd /  # import the installed package, not a source tree
"$VENV/bin/python" - <<'PY'
import protocol._trie_accel  # noqa: F401  (raises ImportError when it was not built)
from protocol import trie
assert trie.accelerated(), "the trie accelerator is built but not in use"
print("build.sh: trie accelerator", protocol._trie_accel.__file__)
PY
"$VENV/bin/relaynet" --version
