//! Criterion benches of quanta-core's kernels, one group per kernel family, every SIMD level the
//! CPU has (`SimdLevel::available()`); names encode the parameters, e.g. `l2sqr/avx2/d=128`.
//!
//! ```text
//! cargo bench -p quanta-core --bench kernels                 # everything (~2-3 min)
//! cargo bench -p quanta-core --bench kernels -- l2sqr        # one family
//! cargo bench -p quanta-core --bench kernels -- --quick      # faster, rougher
//! ```
//!
//! Throughput: bytes read for the streaming kernels (GB/s), elements (keys, distances, FLOPs)
//! for the others — see each group. Data is seeded (`quanta_core::rng::Rng`), so runs compare.

use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion, Throughput,
};
use quanta_core::control::Control;
use quanta_core::distance::{self, Metric};
use quanta_core::kernels::{hamming, l2, pq};
use quanta_core::kmeans::{self, KMeansParams};
use quanta_core::rng::Rng;
use quanta_core::topk::TopK;
use quanta_core::{threads, SimdLevel};
use std::time::Duration;

/// `n` standard-normal f32 values from a fixed seed.
fn normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// `n` uniform [0, 1) f32 values from a fixed seed.
fn uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| rng.next_f32()).collect()
}

fn levels() -> Vec<SimdLevel> {
    SimdLevel::available()
}

/// Short settings for the per-call kernels (nanoseconds to microseconds per call).
fn fast<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1000));
    g
}

/// Settings for the heavy end-to-end benches (tens of milliseconds per call).
fn slow<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    g
}

fn bench_l2sqr_ip(c: &mut Criterion) {
    for (name, f) in [
        (
            "l2sqr",
            l2::l2sqr_with as fn(SimdLevel, &[f32], &[f32]) -> f32,
        ),
        ("inner_product", l2::inner_product_with),
    ] {
        let mut g = fast(c, name);
        for d in [16usize, 128, 784] {
            let a = normal(d, 1);
            let b = normal(d, 2);
            g.throughput(Throughput::Bytes((2 * d * 4) as u64));
            for lvl in levels() {
                g.bench_function(BenchmarkId::new(lvl.name(), format!("d={d}")), |bch| {
                    bch.iter(|| f(lvl, black_box(&a), black_box(&b)))
                });
            }
        }
        g.finish();
    }
}

fn bench_argmin_shifted(c: &mut Criterion) {
    const N: usize = 1024;
    let base = uniform(N, 3);
    let ip = normal(N, 4);
    let mut g = fast(c, "argmin_shifted");
    g.throughput(Throughput::Elements(N as u64));
    for lvl in levels() {
        g.bench_function(BenchmarkId::new(lvl.name(), format!("n={N}")), |bch| {
            bch.iter(|| l2::argmin_shifted_with(lvl, black_box(&base), black_box(&ip)))
        });
    }
    g.finish();
}

fn bench_find_below(c: &mut Criterion) {
    const N: usize = 1 << 20;
    let v = uniform(N, 5); // all in [0, 1)
    let mut g = fast(c, "find_below");
    // a full scan with no hit: pure streaming speed
    g.throughput(Throughput::Bytes((N * 4) as u64));
    for lvl in levels() {
        g.bench_function(BenchmarkId::new(lvl.name(), "n=1M/no-hit"), |bch| {
            bch.iter(|| l2::find_below_with(lvl, black_box(&v), 0, black_box(-1.0)))
        });
    }
    // the top-k scan pattern: restart after each hit on a 1024-entry row, ~1% of entries hit
    const ROW: usize = 1024;
    let row = &v[..ROW];
    let thr = 0.01f32;
    let hits = row.iter().filter(|&&x| x < thr).count();
    g.throughput(Throughput::Bytes((ROW * 4) as u64));
    for lvl in levels() {
        g.bench_function(
            BenchmarkId::new(lvl.name(), format!("n={ROW}/scan-{hits}-hits")),
            |bch| {
                bch.iter(|| {
                    let (mut j, mut n) = (0usize, 0usize);
                    loop {
                        j = l2::find_below_with(lvl, black_box(row), j, thr);
                        if j >= ROW {
                            break;
                        }
                        n += 1;
                        j += 1;
                    }
                    n
                })
            },
        );
    }
    g.finish();
}

fn bench_first_non_finite(c: &mut Criterion) {
    const N: usize = 1 << 20;
    let x = normal(N, 6); // all finite: the whole array is scanned
    let mut g = fast(c, "first_non_finite");
    g.throughput(Throughput::Bytes((N * 4) as u64));
    for lvl in levels() {
        g.bench_function(BenchmarkId::new(lvl.name(), "n=1M"), |bch| {
            bch.iter(|| l2::first_non_finite_with(lvl, black_box(&x)))
        });
    }
    g.finish();
}

fn bench_ip_tile(c: &mut Criterion) {
    let (na, nb, d) = (distance::QUERY_TILE, distance::BASE_TILE, 128usize);
    let a = normal(na * d, 7);
    let b = normal(nb * d, 8);
    let mut out = vec![0f32; na * nb];
    let mut g = slow(c, "ip_tile");
    // elements = floating-point operations (one multiply + one add per term)
    g.throughput(Throughput::Elements((2 * na * nb * d) as u64));
    for lvl in levels()
        .into_iter()
        .filter(|l| matches!(l, SimdLevel::Scalar | SimdLevel::Avx2))
    {
        g.bench_function(
            BenchmarkId::new(lvl.name(), format!("{na}x{nb}x{d}")),
            |bch| {
                bch.iter(|| {
                    distance::ip_tile(lvl, black_box(&a), black_box(&b), d, &mut out);
                    black_box(out[0])
                })
            },
        );
    }
    g.finish();
}

fn bench_topk(c: &mut Criterion) {
    const N: usize = 1 << 20;
    let keys = uniform(N, 9);
    let mut g = fast(c, "topk_push");
    g.throughput(Throughput::Elements(N as u64));
    for k in [10usize, 1000] {
        g.bench_function(BenchmarkId::new(format!("k={k}"), "n=1M/random"), |bch| {
            bch.iter(|| {
                let mut t = TopK::new(k);
                for (i, &key) in black_box(&keys).iter().enumerate() {
                    t.push(key, i as i64);
                }
                black_box(t.threshold())
            })
        });
    }
    g.finish();
}

fn bench_knn(c: &mut Criterion) {
    let (nq, n, d, k) = (100usize, 100_000usize, 128usize, 10usize);
    let q = normal(nq * d, 10);
    let base = normal(n * d, 11);
    let norms = threads::install(|| distance::row_norms(&base, d));
    let ctl = Control::new();
    let nt = threads::num_threads();
    let mut g = slow(c, "knn");
    // elements = query x base distances
    g.throughput(Throughput::Elements((nq * n) as u64));
    g.bench_function(
        BenchmarkId::new(
            format!("l2/{}/threads={nt}", quanta_core::simd::level().name()),
            format!("nq={nq}/n={n}/d={d}/k={k}"),
        ),
        |bch| {
            bch.iter(|| {
                threads::install(|| {
                    distance::knn(black_box(&q), &base, &norms, d, k, Metric::L2, &ctl)
                        .expect("knn")
                })
            })
        },
    );
    g.finish();
}

fn bench_pq_adc(c: &mut Criterion) {
    const N: usize = 1 << 16;
    let mut g = fast(c, "pq_adc_block");
    // elements = codes scanned (M table lookups each)
    g.throughput(Throughput::Elements(N as u64));
    for m in [4usize, 8, 16, 32, 64] {
        let table = normal(m * pq::TABLE_STRIDE, 13);
        let mut rng = Rng::new(14);
        let codes: Vec<u8> = (0..N * m).map(|_| rng.next_u64() as u8).collect();
        let mut out = vec![0f32; N];
        for lvl in levels() {
            g.bench_function(
                BenchmarkId::new(lvl.name(), format!("M={m}/n={N}")),
                |bch| {
                    bch.iter(|| {
                        pq::adc_block_gather_with(
                            lvl,
                            black_box(&table),
                            m,
                            black_box(&codes),
                            &mut out,
                        );
                        black_box(out[0])
                    })
                },
            );
        }
    }
    g.finish();
}

fn bench_kmeans(c: &mut Criterion) {
    let (n, d, k, niter) = (20_000usize, 32usize, 256usize, 5usize);
    let x = normal(n * d, 12);
    let mut params = KMeansParams::new(k);
    params.niter = niter;
    params.seed = 1234;
    let ctl = Control::new();
    let nt = threads::num_threads();
    let mut g = slow(c, "kmeans_train");
    // elements = point x centroid distance evaluations
    g.throughput(Throughput::Elements((n * k * niter) as u64));
    g.bench_function(
        BenchmarkId::new(
            format!("{}/threads={nt}", quanta_core::simd::level().name()),
            format!("n={n}/d={d}/k={k}/niter={niter}"),
        ),
        |bch| {
            bch.iter(|| {
                threads::install(|| {
                    kmeans::train(black_box(&x), d, &params, None, &ctl).expect("kmeans")
                })
            })
        },
    );
    g.finish();
}

/// Hamming distances of one query to 4096 codes (throughput: code bytes compared).
fn bench_hamming_many(c: &mut Criterion) {
    let mut g = fast(c, "hamming_many");
    let mut rng = Rng::new(7);
    for nbits in [64usize, 128, 256, 512, 200] {
        let cs = nbits / 8;
        let n = 4096;
        let codes: Vec<u8> = (0..n * cs).map(|_| rng.next_u64() as u8).collect();
        let q: Vec<u8> = (0..cs).map(|_| rng.next_u64() as u8).collect();
        let mut out = vec![0u32; n];
        g.throughput(Throughput::Bytes((n * cs) as u64));
        for lvl in levels() {
            g.bench_function(
                BenchmarkId::new(lvl.name(), format!("nbits={nbits}")),
                |bch| {
                    bch.iter(|| {
                        hamming::hamming_many_with(lvl, black_box(&q), black_box(&codes), &mut out)
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_pq_adc,
    bench_hamming_many,
    bench_l2sqr_ip,
    bench_argmin_shifted,
    bench_find_below,
    bench_first_non_finite,
    bench_ip_tile,
    bench_topk,
    bench_knn,
    bench_kmeans
);
criterion_main!(benches);
