//! Fully connected layer, PyTorch layout: weight `[out_f, in_f]`, `y = x·Wᵀ + b`.
use super::gemm::sgemm;

fn check(n: usize, in_f: usize, out_f: usize, x: &[f32], w: &[f32], y_or_dy: &[f32]) {
    assert_eq!(x.len(), n * in_f, "linear: x length for n={n} in_f={in_f}");
    assert_eq!(
        w.len(),
        out_f * in_f,
        "linear: weight length for out_f={out_f} in_f={in_f}"
    );
    assert_eq!(
        y_or_dy.len(),
        n * out_f,
        "linear: output length for n={n} out_f={out_f}"
    );
}

/// `y [n, out_f] = x [n, in_f] · Wᵀ + b`.
pub fn linear_forward(n: usize, in_f: usize, out_f: usize, x: &[f32], w: &[f32], b: Option<&[f32]>, y: &mut [f32]) {
    check(n, in_f, out_f, x, w, y);
    let beta = match b {
        Some(b) => {
            assert_eq!(b.len(), out_f, "linear: bias length");
            // Seed every row with the bias and let the GEMM add onto it.
            y.chunks_exact_mut(out_f.max(1)).for_each(|row| row.copy_from_slice(b));
            1.0
        }
        None => 0.0,
    };
    sgemm(
        false,
        true,
        n,
        out_f,
        in_f,
        1.0,
        x,
        in_f.max(1),
        w,
        in_f.max(1),
        beta,
        y,
        out_f.max(1),
    );
}

/// Writes `dw = dyᵀ·x`, `db = Σ_rows dy` and `dx = dy·W` (the last two when given).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    n: usize,
    in_f: usize,
    out_f: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    check(n, in_f, out_f, x, w, dy);
    assert_eq!(dw.len(), w.len(), "linear: dw length");
    sgemm(
        true,
        false,
        out_f,
        in_f,
        n,
        1.0,
        dy,
        out_f.max(1),
        x,
        in_f.max(1),
        0.0,
        dw,
        in_f.max(1),
    );
    if let Some(db) = db {
        assert_eq!(db.len(), out_f, "linear: db length");
        db.fill(0.0);
        for row in dy.chunks_exact(out_f.max(1)) {
            db.iter_mut().zip(row).for_each(|(d, &g)| *d += g);
        }
    }
    if let Some(dx) = dx {
        assert_eq!(dx.len(), x.len(), "linear: dx length");
        sgemm(
            false,
            false,
            n,
            in_f,
            out_f,
            1.0,
            dy,
            out_f.max(1),
            w,
            in_f.max(1),
            0.0,
            dx,
            in_f.max(1),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    fn reference(n: usize, in_f: usize, out_f: usize, x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
        let mut y = vec![0.0; n * out_f];
        for i in 0..n {
            for o in 0..out_f {
                let mut acc = b.map_or(0.0, |b| b[o]);
                for k in 0..in_f {
                    acc += x[i * in_f + k] * w[o * in_f + k];
                }
                y[i * out_f + o] = acc;
            }
        }
        y
    }

    fn check_case(n: usize, in_f: usize, out_f: usize, with_bias: bool, seed: u64) {
        let mut rng = rng(seed);
        let x = randv(&mut rng, n * in_f);
        let w = randv(&mut rng, out_f * in_f);
        let b = with_bias.then(|| randv(&mut rng, out_f));
        let mut y = vec![f32::NAN; n * out_f];
        linear_forward(n, in_f, out_f, &x, &w, b.as_deref(), &mut y);
        let (x64, w64) = (to64(&x), to64(&w));
        let b64 = b.as_deref().map(to64);
        assert_close(
            "linear fwd",
            &y,
            &reference(n, in_f, out_f, &x64, &w64, b64.as_deref()),
            1e-4,
            1e-4,
        );

        let r = randv(&mut rng, n * out_f);
        let r64 = to64(&r);
        let (mut dx, mut dw, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; out_f]);
        linear_backward(
            n,
            in_f,
            out_f,
            &x,
            &w,
            &r,
            Some(&mut dx),
            &mut dw,
            with_bias.then_some(&mut db[..]),
        );
        let f = |xp: &[f64], wp: &[f64], bp: Option<&[f64]>| dot(&reference(n, in_f, out_f, xp, wp, bp), &r64);
        assert_close(
            "linear dx",
            &dx,
            &numeric_grad(&x64, |p| f(p, &w64, b64.as_deref())),
            1e-3,
            1e-3,
        );
        assert_close(
            "linear dw",
            &dw,
            &numeric_grad(&w64, |p| f(&x64, p, b64.as_deref())),
            1e-3,
            1e-3,
        );
        if let Some(b64) = &b64 {
            assert_close(
                "linear db",
                &db,
                &numeric_grad(b64, |p| f(&x64, &w64, Some(p))),
                1e-3,
                1e-3,
            );
        }
    }

    #[test]
    fn linear_forward_backward() {
        check_case(3, 7, 5, true, 1);
        check_case(2, 4, 10, false, 2);
        check_case(1, 1, 3, true, 3);
    }
}
