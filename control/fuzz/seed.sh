#!/bin/sh
# Copies the specification-written seed datagrams (control/tests/seeds/,
# committed; one per message type) into every fuzz target's corpus.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for t in $(ls "$here/fuzz_targets" | sed 's/\.rs$//'); do
  mkdir -p "$here/corpus/$t"
  cp "$here/../tests/seeds/"seed-* "$here/corpus/$t/"
done
