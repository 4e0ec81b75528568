use quanta_core::lattice::ZnSphereCodec;
use quanta_core::Control;
use std::time::Instant;
fn main() {
    quanta_core::threads::set_num_threads(1).unwrap();
    for (d, r2) in [(24usize, 10u32), (24, 79), (16, 200)] {
        let c = ZnSphereCodec::new(d, r2).unwrap();
        let mut r = quanta_core::rng::Rng::new(1);
        let n = 200_000;
        let x: Vec<f32> = (0..n * d).map(|_| r.normal() as f32).collect();
        let ctl = Control::new();
        let codes = quanta_core::threads::install(|| c.encode(&x, &ctl)).unwrap();
        let t = Instant::now();
        let _ = quanta_core::threads::install(|| c.encode(&x, &ctl)).unwrap();
        let te = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let out = quanta_core::threads::install(|| c.decode(&codes, &ctl)).unwrap();
        let td = t.elapsed().as_secs_f64();
        let mut o = vec![0f32; d];
        let t = Instant::now();
        let mut s = 0u128;
        for row in codes.chunks_exact(c.code_size()) {
            let v = c.read_code(row, 0).unwrap();
            c.decode_one(v, &mut o);
            s += o[0].to_bits() as u128;
        }
        let tr = t.elapsed().as_secs_f64();
        println!(
            "d={d} r2={r2} enc {:.0} ns/v dec {:.0} ns/v raw {:.0} ns/v {} {}",
            te / n as f64 * 1e9,
            td / n as f64 * 1e9,
            tr / n as f64 * 1e9,
            out[0],
            s
        );
    }
}
