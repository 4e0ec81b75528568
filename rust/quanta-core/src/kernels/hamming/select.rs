//! Which Hamming variant runs, chosen per CPU by measurement.
//!
//! Feature bits say what a CPU *can* run, not what is fast on it: AMD Zen 4 has AVX-512
//! VPOPCNTDQ but executes 512-bit operations in two halves, Zen 3 runs `popcnt` on all four
//! scalar ALUs, Intel cores differ again. So at first use for a (SIMD level, code size) pair,
//! [`plan`] times every per-code variant the level allows ([`Kernel::available`]) and the
//! bit-sliced scan on a small synthetic block (well under a millisecond per pair), keeps the
//! fastest per-code variant, and derives from the measured costs how many queries must share a
//! tile before the bit-sliced scan's transpose pays off. The result is cached in a `OnceLock`.
//! All variants compute the same integers, so the choice changes speed only, never results.
//!
//! `QUANTA_HAMMING_KERNEL` (read once) overrides it: `scalar`, `popcnt`, `lut` or `vpopcnt`
//! forces that per-code variant and never uses the bit-sliced scan; `sliced` always uses the
//! bit-sliced scan; `auto` (or unset) measures. A variant the CPU or the `QUANTA_SIMD` cap does
//! not allow is refused with a warning on stderr and the measured choice is used.

use super::sliced::{SlicedQuery, Tile, LANES};
use super::{hamming_many_kernel, Kernel};
use crate::rng::Rng;
use crate::simd::SimdLevel;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

/// How one search scans: the per-code variant, and from how many queries per tile on the
/// bit-sliced scan is used instead (`usize::MAX`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Per-code variant.
    pub kernel: Kernel,
    /// Queries per scan task from which the bit-sliced scan is used.
    pub sliced_min_queries: usize,
}

/// A forced choice from `QUANTA_HAMMING_KERNEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Override {
    /// This per-code variant, never the bit-sliced scan.
    Kernel(Kernel),
    /// Always the bit-sliced scan.
    Sliced,
}

impl Override {
    /// Parse `auto` (None), `sliced` or a [`Kernel`] name.
    pub fn parse(s: &str) -> Result<Option<Override>, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "" | "auto" => Ok(None),
            "sliced" => Ok(Some(Override::Sliced)),
            _ => Kernel::parse(&t).map(|k| Some(Override::Kernel(k))).ok_or_else(|| {
                format!("unknown Hamming kernel {t:?}: expected auto, sliced, scalar, popcnt, lut or vpopcnt")
            }),
        }
    }
}

fn env_override() -> Option<Override> {
    static OV: OnceLock<Option<Override>> = OnceLock::new();
    *OV.get_or_init(|| match std::env::var("QUANTA_HAMMING_KERNEL") {
        Ok(s) => Override::parse(&s).unwrap_or_else(|e| {
            eprintln!("quanta: ignoring QUANTA_HAMMING_KERNEL: {e}");
            None
        }),
        Err(_) => None,
    })
}

/// Code sizes with their own cache slot; larger ones share the last slot, measured at
/// `WIDE_REP` bytes.
const MAX_SLOT: usize = 128;
const WIDE_REP: usize = 160;
const LEVELS: usize = 3;

/// The plan for codes of `code_size` bytes at level `lvl` (measured once, then cached).
pub fn plan(lvl: SimdLevel, code_size: usize) -> Plan {
    static PLANS: [[OnceLock<Plan>; MAX_SLOT + 2]; LEVELS] =
        [const { [const { OnceLock::new() }; MAX_SLOT + 2] }; LEVELS];
    let slot = code_size.min(MAX_SLOT + 1);
    let measured = || {
        *PLANS[lvl as usize][slot].get_or_init(|| {
            let rep = if slot > MAX_SLOT { WIDE_REP } else { code_size };
            calibrate(lvl, rep)
        })
    };
    match env_override() {
        None => measured(),
        Some(Override::Sliced) => Plan {
            sliced_min_queries: 1,
            ..measured()
        },
        Some(Override::Kernel(k)) if k.runs_at(lvl) => Plan {
            kernel: k,
            sliced_min_queries: usize::MAX,
        },
        Some(Override::Kernel(k)) => {
            static WARNED: OnceLock<()> = OnceLock::new();
            WARNED.get_or_init(|| {
                eprintln!(
                    "quanta: QUANTA_HAMMING_KERNEL={} cannot run at SIMD level {} on this CPU, \
                     using the measured choice",
                    k.name(),
                    lvl.name()
                )
            });
            measured()
        }
    }
}

/// Best of `reps` timings of `f`, in seconds (after one untimed warm-up run, which also wakes
/// up wide vector units that some CPUs power down when idle).
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Time the candidates on uniform random codes (like real codes, their distances to a query
/// cluster near `nbits / 2`, and the threshold sits a few deviations below: the usual k-NN
/// state once a scan has warmed up).
fn calibrate(lvl: SimdLevel, cs: usize) -> Plan {
    const REPS: usize = 5;
    const QUERIES: usize = 8;
    let cs = cs.max(1);
    let mut r = Rng::new(0x5eed);
    let n = (16 * 1024 / cs).clamp(LANES, 4096) / LANES * LANES;
    let codes: Vec<u8> = (0..n * cs).map(|_| r.next_u64() as u8).collect();
    let qs: Vec<u8> = (0..QUERIES * cs).map(|_| r.next_u64() as u8).collect();
    let mut out = vec![0u32; n];
    let pairs = (n * QUERIES) as f64;
    let mut best = (f64::INFINITY, Kernel::Scalar);
    for k in Kernel::available(lvl) {
        let t = best_of(REPS, || {
            for q in qs.chunks_exact(cs) {
                hamming_many_kernel(k, q, &codes, &mut out);
                black_box(&out);
            }
        }) / pairs;
        if t < best.0 {
            best = (t, k);
        }
    }
    // bit-sliced: per-code tile preparation, and per-pair scan cost at a k-NN-like threshold
    let nbits = 8 * cs;
    let thr = (nbits / 2).saturating_sub(3 * (nbits as f64).sqrt() as usize / 2) as u32;
    let sq: Vec<SlicedQuery> = qs.chunks_exact(cs).map(SlicedQuery::new).collect();
    let mut tile = Tile::new(cs);
    let mut scratch = Vec::new();
    let tile_codes = &codes[..LANES * cs];
    let prep = best_of(REPS, || tile.load_with(lvl, black_box(tile_codes), cs)) / LANES as f64;
    let scan = best_of(REPS, || {
        for q in &sq {
            black_box(tile.below_with(lvl, q, thr, &mut scratch));
        }
    }) / (LANES * QUERIES) as f64;
    let gain = best.0 - scan;
    let sliced_min_queries = if gain > 0.0 {
        // 25 % margin: the transpose also costs cache traffic the timing does not see
        ((1.25 * prep / gain).ceil() as usize).max(1)
    } else {
        usize::MAX
    };
    Plan {
        kernel: best.1,
        sliced_min_queries,
    }
}
