#!/bin/sh
# Writes the seed corpus (the literal packets of the wire tests) into
# dataplane/fuzz/corpus/<target>/, then: cargo fuzz run <target> from dataplane/.
set -eu
cd "$(dirname "$0")/../.."
cargo test -p pias-dataplane --lib wire::testdata::write_fuzz_seeds -- --ignored --exact
ls dataplane/fuzz/corpus
