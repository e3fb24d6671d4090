//! Partition-key choice: which simulated device or user sends the next
//! event. Keys are `{run_id}-{prefix}{index:06}`, so one run's items can be
//! counted back exactly and never collide with another run's.
//!
//! Invariant: every index drawn is in `0..keys`, whatever the distribution,
//! so `--verify` can enumerate all keys a run could have written.

use rand::Rng;
use rand_distr::{Distribution as _, Zipf};
use serde::{Deserialize, Serialize};

/// How events spread over the partition keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Every key equally likely.
    Uniform,
    /// Zipf over the keys (key 0 most frequent); see `--zipf-exponent`.
    Zipf,
    /// A share `--hot-share` of the events go to key 0, the rest uniform.
    Hot,
}

/// Error building a key picker from its options.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// The zipf exponent is not a positive finite number.
    #[error("--zipf-exponent must be a positive number, got {0}")]
    ZipfExponent(f64),
    /// The hot share is not within [0, 1].
    #[error("--hot-share must be between 0 and 1, got {0}")]
    HotShare(f64),
}

/// Draws key indexes in `0..keys` following a [`Distribution`].
#[derive(Debug, Clone)]
pub struct KeyPicker {
    keys: u64,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Uniform,
    Zipf(Zipf<f64>),
    Hot(f64),
}

impl KeyPicker {
    /// A picker over `keys` keys (at least one).
    pub fn new(
        keys: u64,
        dist: Distribution,
        zipf_exponent: f64,
        hot_share: f64,
    ) -> Result<Self, KeysError> {
        let keys = keys.max(1);
        let kind = match dist {
            Distribution::Uniform => Kind::Uniform,
            Distribution::Zipf => {
                if !(zipf_exponent.is_finite() && zipf_exponent > 0.0) {
                    return Err(KeysError::ZipfExponent(zipf_exponent));
                }
                // keys >= 1 and a positive exponent are Zipf::new's only conditions.
                Kind::Zipf(
                    Zipf::new(keys as f64, zipf_exponent)
                        .map_err(|_| KeysError::ZipfExponent(zipf_exponent))?,
                )
            }
            Distribution::Hot => {
                if !(0.0..=1.0).contains(&hot_share) {
                    return Err(KeysError::HotShare(hot_share));
                }
                Kind::Hot(hot_share)
            }
        };
        Ok(Self { keys, kind })
    }

    /// Number of distinct keys.
    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The next key index, in `0..keys`.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        match &self.kind {
            Kind::Uniform => rng.random_range(0..self.keys),
            // Zipf samples ranks 1..=n as floats.
            Kind::Zipf(z) => (z.sample(rng) as u64).clamp(1, self.keys) - 1,
            Kind::Hot(share) => {
                if rng.random_bool(*share) {
                    0
                } else {
                    rng.random_range(0..self.keys)
                }
            }
        }
    }
}

/// The partition key value of index `i` in run `run_id`.
pub fn key_name(run_id: &str, prefix: &str, i: u64) -> String {
    let mut out = String::with_capacity(run_id.len() + prefix.len() + 8);
    push_key_name(&mut out, run_id, prefix, i);
    out
}

/// Appends [`key_name`]'s text to `out` (`{run_id}-{prefix}{i:06}`),
/// without `core::fmt`: the generator makes one per event.
pub fn push_key_name(out: &mut String, run_id: &str, prefix: &str, i: u64) {
    out.push_str(run_id);
    out.push('-');
    out.push_str(prefix);
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(i);
    for _ in digits.len()..6 {
        out.push('0');
    }
    out.push_str(digits);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn histogram(p: &KeyPicker, n: usize) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut h = vec![0u64; p.keys() as usize];
        for _ in 0..n {
            h[p.pick(&mut rng) as usize] += 1;
        }
        h
    }

    #[test]
    fn uniform_spreads_evenly() {
        let p = KeyPicker::new(10, Distribution::Uniform, 1.0, 0.0).expect("picker");
        let h = histogram(&p, 100_000);
        for c in h {
            assert!((9_000..11_000).contains(&c), "bucket {c} far from 10,000");
        }
    }

    #[test]
    fn zipf_ranks_follow_the_power_law() {
        let p = KeyPicker::new(100, Distribution::Zipf, 1.0, 0.0).expect("picker");
        let h = histogram(&p, 200_000);
        // With exponent 1, P(rank k) ∝ 1/k: key 0 is ~2× key 1 and ~10× key 9.
        let r1 = h[0] as f64 / h[1] as f64;
        let r9 = h[0] as f64 / h[9] as f64;
        assert!((1.8..2.2).contains(&r1), "key0/key1 = {r1}");
        assert!((8.5..11.5).contains(&r9), "key0/key9 = {r9}");
        assert!(h[0] > h[50] * 20, "head {} vs tail {}", h[0], h[50]);
    }

    #[test]
    fn hot_key_takes_its_share() {
        let p = KeyPicker::new(1000, Distribution::Hot, 0.9, 0.5).expect("picker");
        let h = histogram(&p, 100_000);
        // 50% directly plus 1/1000 of the uniform half.
        let share = h[0] as f64 / 100_000.0;
        assert!((0.49..0.51).contains(&share), "hot share {share}");
        assert!(h[1..].iter().all(|&c| c < 200), "no other key is hot");
    }

    #[test]
    fn every_index_is_in_range() {
        for dist in [Distribution::Uniform, Distribution::Zipf, Distribution::Hot] {
            let p = KeyPicker::new(3, dist, 0.5, 1.0).expect("picker");
            let h = histogram(&p, 10_000);
            assert_eq!(h.iter().sum::<u64>(), 10_000);
        }
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(matches!(
            KeyPicker::new(10, Distribution::Zipf, 0.0, 0.0),
            Err(KeysError::ZipfExponent(_))
        ));
        assert!(matches!(
            KeyPicker::new(10, Distribution::Hot, 1.0, 1.5),
            Err(KeysError::HotShare(_))
        ));
    }

    #[test]
    fn key_names_carry_the_run_id() {
        assert_eq!(key_name("r1", "d", 42), "r1-d000042");
        for i in [0, 7, 999_999, 1_000_000, 12_345_678_901, u64::MAX] {
            assert_eq!(key_name("run", "u", i), format!("run-u{i:06}"));
        }
    }
}
