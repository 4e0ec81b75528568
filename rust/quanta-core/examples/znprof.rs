//! Single-thread Zn encode/decode timing (profiling aid): `cargo run --release --example znprof`.
use quanta_core::lattice::ZnSphereCodec;
use std::time::Instant;

fn main() {
    let cases: Vec<(usize, u32)> = std::env::args()
        .nth(1)
        .map(|s| {
            s.split(',')
                .map(|p| {
                    let (d, r) = p.split_once(':').expect("d:r2");
                    (d.parse().unwrap(), r.parse().unwrap())
                })
                .collect()
        })
        .unwrap_or_else(|| vec![(24, 10), (24, 79), (16, 200)]);
    for (d, r2) in cases {
        let c = ZnSphereCodec::new(d, r2).unwrap();
        let mut r = quanta_core::rng::Rng::new(1);
        let n = 200_000;
        let x: Vec<f32> = (0..n * d).map(|_| r.normal() as f32).collect();
        let mut s = Default::default();
        let t = Instant::now();
        let codes: Vec<u128> = x.chunks_exact(d).map(|v| c.encode_one(v, &mut s)).collect();
        let te = t.elapsed().as_secs_f64();
        let mut o = vec![0f32; d];
        let mut acc = 0u32;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for &code in &codes {
                c.decode_one(code, &mut o);
                acc = acc.wrapping_add(o[0].to_bits());
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "d={d} r2={r2} encode {:.0} ns/vec, decode {:.0} ns/vec ({acc})",
            te / n as f64 * 1e9,
            best / n as f64 * 1e9
        );
    }
}
