//! One-way latencies between clusters: read from a file, or generated.
//!
//! # File format
//! Text, one statement per line, `#` starts a comment:
//!
//! ```text
//! clusters 4          # number of clusters (ids 0..4), first statement
//! 0 1 12.5            # one-way latency between clusters 0 and 1, ms
//! 1 2 3
//! 2 3 40
//! ```
//!
//! Links are symmetric. Pairs not given get the shortest path over the
//! given links (so an ISP map of POP-to-POP link latencies works); a
//! cluster unreachable from another is an error. Latency inside a cluster
//! is `intra_us` (100 µs unless set with `intra 0.1`, in ms).
//!
//! # Synthetic
//! [`Topology::synthetic`] places clusters uniformly at random on a
//! 20 000 km × 10 000 km plane and sets latency = distance at 200 km/ms
//! (light in fibre) + 0.5 ms, roughly the spread of a global deployment
//! (0.5–112 ms one way).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most clusters a file may describe (the all-pairs shortest path is
/// cubic).
pub const MAX_FILE_CLUSTERS: usize = 2048;

/// Cluster-to-cluster one-way latencies in microseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    n: usize,
    one_way_us: Vec<u32>,
    intra_us: u32,
}

/// A topology file that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("topology line {line}: {what}")]
pub struct TopologyError {
    /// 1-based line number (0: the file as a whole).
    pub line: usize,
    /// What was wrong.
    pub what: String,
}

impl Topology {
    /// `clusters` clusters at random points (see the module docs).
    pub fn synthetic(clusters: usize, seed: u64) -> Self {
        let n = clusters.max(1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x746f_706f);
        let pts: Vec<(f64, f64)> = (0..n)
            .map(|_| (rng.gen_range(0.0..20_000.0), rng.gen_range(0.0..10_000.0)))
            .collect();
        let mut one_way_us = vec![0u32; n * n];
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let (a, b) = (pts[i], pts[j]);
                    let km = ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
                    one_way_us[i * n + j] = (500.0 + km * 5.0) as u32;
                }
            }
        }
        Topology {
            n,
            one_way_us,
            intra_us: 100,
        }
    }

    /// Parse the file format of the module docs.
    pub fn parse(text: &str) -> Result<Self, TopologyError> {
        let err = |line: usize, what: &str| TopologyError {
            line,
            what: what.to_owned(),
        };
        let mut n: Option<usize> = None;
        let mut intra_us = 100u32;
        let mut dist: Vec<f64> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let s = raw.split('#').next().unwrap_or("").trim();
            if s.is_empty() {
                continue;
            }
            let f: Vec<&str> = s.split_whitespace().collect();
            match f.as_slice() {
                ["clusters", k] => {
                    if n.is_some() {
                        return Err(err(line, "clusters given twice"));
                    }
                    let k: usize = k
                        .parse()
                        .map_err(|_| err(line, "clusters: expected a number"))?;
                    if k == 0 || k > MAX_FILE_CLUSTERS {
                        return Err(err(line, "clusters: expected 1..=2048"));
                    }
                    n = Some(k);
                    dist = vec![f64::INFINITY; k * k];
                    for c in 0..k {
                        dist[c * k + c] = 0.0;
                    }
                }
                ["intra", ms] => {
                    let ms: f64 = ms
                        .parse()
                        .map_err(|_| err(line, "intra: expected milliseconds"))?;
                    if !(0.0..1000.0).contains(&ms) {
                        return Err(err(line, "intra: expected 0..1000 ms"));
                    }
                    intra_us = (ms * 1000.0) as u32;
                }
                [a, b, ms] => {
                    let k = n.ok_or_else(|| err(line, "a link before `clusters N`"))?;
                    let a: usize = a.parse().map_err(|_| err(line, "expected a cluster id"))?;
                    let b: usize = b.parse().map_err(|_| err(line, "expected a cluster id"))?;
                    let ms: f64 = ms
                        .parse()
                        .map_err(|_| err(line, "expected a latency in ms"))?;
                    if a >= k || b >= k {
                        return Err(err(line, "cluster id out of range"));
                    }
                    if !(ms.is_finite() && (0.0..10_000.0).contains(&ms)) {
                        return Err(err(line, "latency: expected 0..10000 ms"));
                    }
                    if a != b {
                        let us = ms * 1000.0;
                        dist[a * k + b] = dist[a * k + b].min(us);
                        dist[b * k + a] = dist[b * k + a].min(us);
                    }
                }
                _ => return Err(err(line, "expected `clusters N`, `intra MS` or `A B MS`")),
            }
        }
        let k = n.ok_or_else(|| err(0, "no `clusters N` line"))?;
        // Floyd–Warshall: pairs not given take the shortest path.
        for m in 0..k {
            for i in 0..k {
                let im = dist[i * k + m];
                if !im.is_finite() {
                    continue;
                }
                for j in 0..k {
                    let v = im + dist[m * k + j];
                    if v < dist[i * k + j] {
                        dist[i * k + j] = v;
                    }
                }
            }
        }
        if dist.iter().any(|d| !d.is_finite()) {
            return Err(err(0, "some clusters are not connected"));
        }
        Ok(Topology {
            n: k,
            one_way_us: dist.iter().map(|d| *d as u32).collect(),
            intra_us,
        })
    }

    /// Number of clusters.
    pub fn clusters(&self) -> usize {
        self.n
    }

    /// One-way latency between two clusters in microseconds (`intra_us`
    /// inside one cluster; ids wrap modulo the cluster count).
    pub fn one_way_us(&self, a: usize, b: usize) -> u32 {
        let (a, b) = (a % self.n, b % self.n);
        if a == b {
            return self.intra_us;
        }
        self.one_way_us.get(a * self.n + b).copied().unwrap_or(0)
    }

    /// Write the topology in the file format (every pair).
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "clusters {}\nintra {}\n",
            self.n,
            f64::from(self.intra_us) / 1000.0
        );
        for a in 0..self.n {
            for b in a + 1..self.n {
                s.push_str(&format!(
                    "{a} {b} {}\n",
                    f64::from(self.one_way_us(a, b)) / 1000.0
                ));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fills_shortest_paths() {
        let t = Topology::parse(
            "# a line\nclusters 4\nintra 0.2\n0 1 10\n1 2 5 # comment\n2 3 1\n0 3 50\n",
        )
        .unwrap();
        assert_eq!(t.clusters(), 4);
        assert_eq!(t.one_way_us(0, 1), 10_000);
        assert_eq!(t.one_way_us(0, 2), 15_000);
        assert_eq!(
            t.one_way_us(3, 0),
            16_000,
            "via 2 and 1, not the 50 ms link"
        );
        assert_eq!(t.one_way_us(2, 2), 200);
        let back = Topology::parse(&t.to_text()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn parse_errors_name_the_line() {
        for (text, line) in [
            ("0 1 5\n", 1),
            ("clusters 2\n0 2 5\n", 2),
            ("clusters 2\n0 1 -1\n", 2),
            ("clusters 2\nfoo\n", 2),
            ("clusters 3\n0 1 1\n", 0),
            ("", 0),
            ("clusters 0\n", 1),
        ] {
            assert_eq!(Topology::parse(text).unwrap_err().line, line, "{text:?}");
        }
    }

    #[test]
    fn synthetic_is_seeded_and_plausible() {
        let a = Topology::synthetic(50, 1);
        assert_eq!(a, Topology::synthetic(50, 1));
        assert_ne!(a, Topology::synthetic(50, 2));
        for i in 0..50 {
            for j in 0..50 {
                let d = a.one_way_us(i, j);
                assert_eq!(d, a.one_way_us(j, i));
                if i != j {
                    assert!((500..=112_500).contains(&d), "{d}");
                }
            }
        }
    }
}
