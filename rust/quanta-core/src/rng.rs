//! Small seeded RNG (SplitMix64 seeding a xoshiro256**), so every randomized routine is
//! reproducible from a `u64` seed without depending on a crate's stream stability.

/// xoshiro256** generator.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seeded generator; any seed (also 0) gives a valid state.
    pub fn new(seed: u64) -> Self {
        let mut z = seed;
        let mut next = || {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^ (x >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }

    /// Uniform in [0, 1) with 24 random bits (exactly representable as f32).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < 2^-64·n, negligible).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// The first `k` entries of a uniformly random permutation of `0..n` (partial Fisher–Yates).
    pub fn sample_indices(&mut self, n: usize, k: usize) -> Vec<usize> {
        let k = k.min(n);
        let mut perm: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + self.below(n - i);
            perm.swap(i, j);
        }
        perm.truncate(k);
        perm
    }
}

/// MT19937 (32-bit Mersenne Twister, `std::mt19937`): only used to reproduce faiss's random
/// choices (`faiss::RandomGenerator`), so that the same seed picks the same k-means
/// initialisation and subsample as faiss.
pub struct Mt19937 {
    state: [u32; 624],
    idx: usize,
}

impl Mt19937 {
    /// `std::mt19937(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, idx: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.idx = 0;
    }

    /// Next 32-bit output.
    pub fn next_u32(&mut self) -> u32 {
        if self.idx >= 624 {
            self.twist();
        }
        let mut y = self.state[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }
}

/// The first `k` entries of faiss's `rand_perm(perm, n, seed)` (a forward Fisher–Yates driven by
/// `RandomGenerator(seed).rand_int(n - i)` = `mt() % (n - i)`): the rows faiss's k-means picks
/// as initial centroids or as its training subsample for the same seed. `n` must fit in i32
/// (faiss's limit too); beyond it an independent permutation is used.
pub fn faiss_perm_prefix(n: usize, k: usize, seed: i64) -> Vec<usize> {
    let k = k.min(n);
    if n > i32::MAX as usize {
        return Rng::new(seed as u64).sample_indices(n, k);
    }
    let mut rng = Mt19937::new(seed as u32);
    let mut perm: Vec<usize> = (0..n).collect();
    for i in 0..k.min(n.saturating_sub(1)) {
        let i2 = i + (rng.next_u32() % (n - i) as u32) as usize;
        perm.swap(i, i2);
    }
    perm.truncate(k);
    perm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_standard() {
        // the C++ standard requires the 10000th output of a default-seeded (5489) mt19937
        let mut mt = Mt19937::new(5489);
        let v = (0..10_000).map(|_| mt.next_u32()).last().unwrap();
        assert_eq!(v, 4_123_659_995);
        let p = faiss_perm_prefix(10, 10, 1234);
        let mut s = p.clone();
        s.sort();
        assert_eq!(s, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let f = r.next_f32();
            assert!((0.0..1.0).contains(&f));
            assert!(r.below(10) < 10);
        }
    }

    #[test]
    fn sample_is_distinct() {
        let mut r = Rng::new(3);
        let mut s = r.sample_indices(100, 40);
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 40);
        assert!(s.iter().all(|&i| i < 100));
    }
}
