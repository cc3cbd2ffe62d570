#!/bin/sh
# Writes the seed corpus into dataplane/fuzz/corpus/<target>/: the literal
# packets of the wire tests (per-parser targets), and the golden cases'
# input pcaps as frame sequences (the `path` target). Then: cargo fuzz run
# <target> from dataplane/.
set -eu
cd "$(dirname "$0")/../.."
cargo test -p pias-dataplane --lib wire::testdata::write_fuzz_seeds -- --ignored --exact
cargo test -p pias-dataplane --test fuzz_seeds write_path_seeds -- --ignored --exact
mkdir -p dataplane/fuzz/corpus/nat_sequence
ls dataplane/fuzz/corpus
