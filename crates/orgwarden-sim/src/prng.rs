//! Deterministic pseudo-random numbers and identifier generation for the simulator.
//!
//! The simulator must build the same organization from the same seed on every machine and in every
//! version, so it cannot use an external random crate whose algorithms may change. This module owns
//! a tiny SplitMix64 generator (Steele, Lea and Flood, 2014), helpers built on it, and the
//! base62 identifiers the Admin API uses (`user_01…`, `req_01…`).

use serde::{Deserialize, Serialize};

/// The 62 characters of the identifiers, in ASCII order so an encoding is easy to reason about.
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The golden-ratio increment of SplitMix64.
const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function. It is a bijection on `u64`, which [`request_id`] relies on to
/// make request ids unique without remembering the ones already given out.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A SplitMix64 generator. Its whole state is one `u64`, so it is serialized with the simulator
/// state and objects created through the API after a reload get the same ids as before it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// Creates a generator whose sequence is fully determined by `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A uniform integer in `0..n`; `n` must not be zero. The multiply-shift reduction is used
    /// instead of `%` because it has no modulo bias worth mentioning and is exactly reproducible.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "below(0) has no possible value");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A uniform index into a collection of `n` items; `n` must not be zero.
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// A uniform integer in `lo..=hi` (returns `lo` when the range is empty).
    pub(crate) fn range_i64(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + self.below(span) as i64
    }

    /// A uniform float in `[0, 1)` built from the top 53 bits, the mantissa width of an `f64`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`. A `p` of 1.0 is always true because [`Self::unit`] is below 1.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }

    /// `n` random base62 characters.
    pub(crate) fn base62(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| BASE62[self.index(BASE62.len())] as char)
            .collect()
    }

    /// An Admin API object id: `prefix` followed by 24 base62 characters that begin with `01`,
    /// the shape of every documented example (`user_01WCz1FkmYMm4gnmykNKUu3Q`).
    pub(crate) fn object_id(&mut self, prefix: &str) -> String {
        format!("{prefix}01{}", self.base62(22))
    }

    /// A random (version 4 shaped) UUID, used for the organization id and compartment ids.
    pub(crate) fn uuid(&mut self) -> String {
        let hi = self.next_u64();
        let lo = self.next_u64();
        // Set the version nibble to 4 and the variant bits to 10xx, as RFC 9562 requires.
        let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }
}

/// Writes `value` as exactly `width` base62 digits, most significant first. Eleven digits hold
/// any `u64` because 62^11 is larger than 2^64.
pub(crate) fn base62_fixed(mut value: u64, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.into_iter().map(char::from).collect()
}

/// The request id of the `n`-th request of a server seeded with `seed`: `req_01` and 22 base62
/// characters. The first eleven encode a bijection of `n`, so two requests of one server never
/// share an id; the last eleven only make the id look as random as the real ones.
pub(crate) fn request_id(seed: u64, n: u64) -> String {
    let key = mix(seed ^ 0x5EED_F1D5);
    let unique = mix(n.wrapping_add(key));
    let noise = mix(unique ^ GOLDEN);
    format!(
        "req_01{}{}",
        base62_fixed(unique, 11),
        base62_fixed(noise, 11)
    )
}

/// A uniform float in `[0, 1)` that depends only on its inputs, used for fault decisions so that
/// the same request number always gets the same fault, whatever else the server did before.
pub(crate) fn roll(seed: u64, n: u64, salt: u64) -> f64 {
    let bits = mix(mix(seed ^ salt).wrapping_add(n.wrapping_mul(GOLDEN)));
    (bits >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn splitmix_matches_reference_values() {
        // Reference outputs of SplitMix64 seeded with 0, as published with the algorithm.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn ids_have_the_documented_shape() {
        let mut rng = SplitMix64::new(7);
        let id = rng.object_id("user_");
        assert_eq!(id.len(), "user_".len() + 24);
        assert!(id.starts_with("user_01"));
        assert!(id["user_".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
        let uuid = rng.uuid();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }

    #[test]
    fn request_ids_are_unique_and_well_formed() {
        let ids: HashSet<String> = (1..=20_000).map(|n| request_id(42, n)).collect();
        assert_eq!(ids.len(), 20_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 4 + 24);
            assert!(id.starts_with("req_01"));
        }
    }

    #[test]
    fn below_and_unit_stay_in_range() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
            let r = rng.range_i64(-3, 3);
            assert!((-3..=3).contains(&r));
        }
        assert!(rng.chance(1.0));
        assert!(!rng.chance(0.0));
    }

    #[test]
    fn base62_fixed_is_positional() {
        assert_eq!(base62_fixed(0, 3), "000");
        assert_eq!(base62_fixed(61, 2), "0z");
        assert_eq!(base62_fixed(62, 2), "10");
        assert_eq!(base62_fixed(u64::MAX, 11).len(), 11);
    }
}
