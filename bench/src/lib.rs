//! The benchmark harness's shared code: scenarios of the PIAS packet path
//! (a proxy's `Path` and a generator of its input traffic), used by the
//! `pathfwd` and `path-callgrind` binaries and, by path, by the criterion
//! bench `dataplane/benches/path.rs`.

pub mod scenario;
pub mod thp;
