//! Every CUDA op against the CPU backend on the same inputs: |gpu − cpu| ≤ atol + rtol·|cpu|,
//! forward values and gradients, with the first mismatches printed. The CPU side always runs;
//! without a GPU each test runs again on the emulated GPU (`common::gpu`), and only without g++
//! does it print `SKIPPED (no GPU ...)` and pass.
//!
//! GEMM and convolutions run twice on sm_80+: the FP32 SIMT kernels (tight tolerance) and the TF32
//! tensor-core kernels (10-bit mantissa operands, tolerance scaled by sqrt(K)).
mod common;
use std::sync::{Mutex, MutexGuard, OnceLock};

use rand::{rngs::StdRng, Rng, SeedableRng};
use scadles::backend::cpu::{self, Conv2dShape, Pool2dShape};
use scadles::backend::cuda::net::{DeviceTensor, GpuNet};
use scadles::backend::cuda::ops::{dropout_keeps, dropout_threshold};
use scadles::backend::cuda::CudaBackend;
use scadles::models::{self, Shape};
use scadles::tensor::Tensor;

static GPU: OnceLock<Mutex<CudaBackend>> = OnceLock::new();

/// The shared GPU backend (kernels compile once per test binary), or None when the test ran on the
/// emulated GPU in a child process instead (or was skipped, see `common::gpu::here`).
fn gpu(op: &str) -> Option<MutexGuard<'static, CudaBackend>> {
    if !common::gpu::here(op) {
        return None;
    }
    let g = GPU.get_or_init(|| Mutex::new(CudaBackend::new(0).unwrap_or_else(|e| panic!("GPU found but unusable: {e}"))));
    Some(g.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Runs `body(gpu, label)` with the SIMT kernels and, where the GPU has them, the TF32 ones.
fn both_paths(b: &mut CudaBackend, mut body: impl FnMut(&CudaBackend, bool)) {
    b.set_tensor_cores(false);
    body(b, false);
    b.set_tensor_cores(true);
    if b.tensor_cores() {
        body(b, true);
    } else {
        eprintln!("note: {} has no tensor cores; TF32 path not checked", b.arch());
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn randv(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.gen_range(-1.0f32..1.0)).collect()
}

/// GPU against CPU values; equal infinities and NaN against NaN pass (the ops propagate them).
fn assert_close(what: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    common::assert_close(what, got, want, atol, rtol, true)
}

/// FP32 or TF32 tolerance for a dot product of length `k` of values in [-1, 1].
fn gemm_tol(k: usize, tf32: bool) -> (f32, f32) {
    if tf32 {
        (2e-3 * (k as f32).sqrt(), 5e-3)
    } else {
        (1e-5 * (k as f32).sqrt().max(1.0), 1e-4)
    }
}

#[test]
fn gemm_matches_cpu() {
    let mut r = rng(1);
    let cases = [(1, 1, 1, false, false), (67, 45, 33, false, false), (64, 128, 80, true, false), (70, 3, 129, false, true), (33, 65, 17, true, true)];
    let mut inputs = Vec::new();
    for &(m, n, k, ta, tb) in &cases {
        let (a, b, c0) = (randv(&mut r, m * k), randv(&mut r, k * n), randv(&mut r, m * n));
        let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
        let mut want = c0.clone();
        cpu::sgemm(ta, tb, m, n, k, 0.5, &a, lda, &b, ldb, 0.25, &mut want, n);
        inputs.push((a, b, c0, want));
    }
    let Some(mut g) = gpu("gemm") else { return };
    both_paths(&mut g, |g, tf32| {
        for (&(m, n, k, ta, tb), (a, b, c0, want)) in cases.iter().zip(&inputs) {
            let (lda, ldb) = (if ta { m } else { k }, if tb { k } else { n });
            let (da, db) = (g.upload(a).unwrap(), g.upload(b).unwrap());
            let mut dc = g.upload(c0).unwrap();
            g.gemm(ta, tb, m, n, k, 0.5, &da.as_view(), lda, &db.as_view(), ldb, 0.25, &mut dc.as_view_mut(), n).unwrap();
            let (atol, rtol) = gemm_tol(k, tf32);
            assert_close(&format!("gemm {m}x{n}x{k} ta={ta} tb={tb} tf32={tf32}"), &g.download(&dc).unwrap(), want, atol, rtol);
        }
    });
}

#[test]
fn linear_matches_cpu() {
    let (n, in_f, out_f) = (19, 70, 10);
    let mut r = rng(2);
    let (x, w, b, dy) = (randv(&mut r, n * in_f), randv(&mut r, out_f * in_f), randv(&mut r, out_f), randv(&mut r, n * out_f));
    let mut y = vec![0.0; n * out_f];
    cpu::linear_forward(n, in_f, out_f, &x, &w, Some(&b), &mut y);
    let (mut dx, mut dw, mut db) = (vec![0.0; n * in_f], vec![0.0; out_f * in_f], vec![0.0; out_f]);
    cpu::linear_backward(n, in_f, out_f, &x, &w, &dy, Some(&mut dx), &mut dw, Some(&mut db));
    let Some(mut g) = gpu("linear") else { return };
    both_paths(&mut g, |g, tf32| {
        let (gx, gw, gb, gdy) = (g.upload(&x).unwrap(), g.upload(&w).unwrap(), g.upload(&b).unwrap(), g.upload(&dy).unwrap());
        let mut gy = g.zeros::<f32>(n * out_f).unwrap();
        g.linear_forward(n, in_f, out_f, &gx.as_view(), &gw.as_view(), Some(&gb.as_view()), &mut gy.as_view_mut()).unwrap();
        let (mut gdx, mut gdw, mut gdb) = (g.zeros::<f32>(n * in_f).unwrap(), g.zeros::<f32>(out_f * in_f).unwrap(), g.zeros::<f32>(out_f).unwrap());
        g.linear_backward(
            n, in_f, out_f, &gx.as_view(), &gw.as_view(), &gdy.as_view(),
            Some(&mut gdx.as_view_mut()), &mut gdw.as_view_mut(), Some(&mut gdb.as_view_mut()),
        )
        .unwrap();
        let (atol, rtol) = gemm_tol(in_f, tf32);
        assert_close(&format!("linear y tf32={tf32}"), &g.download(&gy).unwrap(), &y, atol, rtol);
        let (atol, rtol) = gemm_tol(out_f.max(n), tf32);
        assert_close(&format!("linear dx tf32={tf32}"), &g.download(&gdx).unwrap(), &dx, atol, rtol);
        assert_close(&format!("linear dw tf32={tf32}"), &g.download(&gdw).unwrap(), &dw, atol, rtol);
        assert_close("linear db", &g.download(&gdb).unwrap(), &db, 1e-5, 1e-5);
    });
}

#[test]
fn conv2d_matches_cpu() {
    let shapes = [
        // (n, c_in, h, w, c_out, k, stride, pad): 3x3 same, strided 3x3, 1x1 projection, 7x7 stem,
        // and a long reduction that takes the split-K weight-gradient path.
        Conv2dShape { n: 2, c_in: 3, h: 9, w: 7, c_out: 5, kh: 3, kw: 3, stride: 1, pad: 1 },
        Conv2dShape { n: 3, c_in: 8, h: 10, w: 10, c_out: 70, kh: 3, kw: 3, stride: 2, pad: 1 },
        Conv2dShape { n: 2, c_in: 16, h: 6, w: 6, c_out: 12, kh: 1, kw: 1, stride: 2, pad: 0 },
        Conv2dShape { n: 1, c_in: 3, h: 20, w: 20, c_out: 8, kh: 7, kw: 7, stride: 2, pad: 3 },
        Conv2dShape { n: 16, c_in: 4, h: 32, w: 32, c_out: 8, kh: 3, kw: 3, stride: 1, pad: 1 },
    ];
    let mut r = rng(3);
    let mut cases = Vec::new();
    for s in &shapes {
        let (x, w, b) = (randv(&mut r, s.n * s.c_in * s.h * s.w), randv(&mut r, s.c_out * s.c_in * s.kh * s.kw), randv(&mut r, s.c_out));
        let dy = randv(&mut r, s.out_len());
        let mut ws = Vec::new();
        let mut y = vec![0.0; s.out_len()];
        cpu::conv2d_forward(s, &x, &w, Some(&b), &mut y, &mut ws);
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; s.c_out]);
        cpu::conv2d_backward(s, &x, &w, &dy, Some(&mut dx), &mut dw, Some(&mut db), &mut ws);
        cases.push((x, w, b, dy, y, dx, dw, db));
    }
    let Some(mut g) = gpu("conv2d") else { return };
    both_paths(&mut g, |g, tf32| {
        for (s, (x, w, b, dy, y, dx, dw, db)) in shapes.iter().zip(&cases) {
            let (gx, gw, gb, gdy) = (g.upload(x).unwrap(), g.upload(w).unwrap(), g.upload(b).unwrap(), g.upload(dy).unwrap());
            let mut gy = g.zeros::<f32>(y.len()).unwrap();
            g.conv2d_forward(s, &gx.as_view(), &gw.as_view(), Some(&gb.as_view()), &mut gy.as_view_mut()).unwrap();
            let (mut gdx, mut gdw, mut gdb) = (g.zeros::<f32>(dx.len()).unwrap(), g.zeros::<f32>(dw.len()).unwrap(), g.zeros::<f32>(db.len()).unwrap());
            g.conv2d_backward(
                s, &gx.as_view(), &gw.as_view(), &gdy.as_view(),
                Some(&mut gdx.as_view_mut()), &mut gdw.as_view_mut(), Some(&mut gdb.as_view_mut()),
            )
            .unwrap();
            let tag = format!("conv2d {s:?} tf32={tf32}");
            let (atol, rtol) = gemm_tol(s.c_in * s.kh * s.kw, tf32);
            assert_close(&format!("{tag} y"), &g.download(&gy).unwrap(), y, atol, rtol);
            let (atol, rtol) = gemm_tol(s.c_out * s.kh * s.kw, tf32);
            assert_close(&format!("{tag} dx"), &g.download(&gdx).unwrap(), dx, atol, rtol);
            let (atol, rtol) = gemm_tol(s.n * s.h_out() * s.w_out(), tf32);
            assert_close(&format!("{tag} dw"), &g.download(&gdw).unwrap(), dw, atol, rtol);
            let (atol, rtol) = gemm_tol(s.n * s.h_out() * s.w_out(), false);
            assert_close(&format!("{tag} db"), &g.download(&gdb).unwrap(), db, atol, rtol);
        }
    });
}

#[test]
fn batchnorm_matches_cpu() {
    let (n, c, hw) = (6, 5, 49);
    let (eps, mom) = (1e-5f32, 0.1f32);
    let mut r = rng(4);
    // A channel offset of 3 checks the variance is not computed as E[x²] − E[x]².
    let x: Vec<f32> = randv(&mut r, n * c * hw).iter().map(|v| v * 2.0 + 3.0).collect();
    let (gamma, beta, dy) = (randv(&mut r, c), randv(&mut r, c), randv(&mut r, n * c * hw));
    let (rm0, rv0) = (randv(&mut r, c), (0..c).map(|i| 0.5 + i as f32).collect::<Vec<_>>());
    let (mut rm, mut rv, mut y, mut sm, mut si) = (rm0.clone(), rv0.clone(), vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    cpu::batchnorm2d_forward_train(&x, n, c, hw, &gamma, &beta, eps, mom, &mut rm, &mut rv, &mut y, &mut sm, &mut si);
    let mut ye = vec![0.0; x.len()];
    cpu::batchnorm2d_forward_eval(&x, n, c, hw, &gamma, &beta, eps, &rm, &rv, &mut ye);
    let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; c], vec![0.0; c]);
    cpu::batchnorm2d_backward(&x, &dy, n, c, hw, &gamma, &sm, &si, &mut dx, &mut dg, &mut db);
    let Some(g) = gpu("batchnorm") else { return };
    let (gx, gg, gb, gdy) = (g.upload(&x).unwrap(), g.upload(&gamma).unwrap(), g.upload(&beta).unwrap(), g.upload(&dy).unwrap());
    let (mut grm, mut grv) = (g.upload(&rm0).unwrap(), g.upload(&rv0).unwrap());
    let (mut gy, mut gsm, mut gsi) = (g.zeros::<f32>(x.len()).unwrap(), g.zeros::<f32>(c).unwrap(), g.zeros::<f32>(c).unwrap());
    g.batchnorm_forward_train(
        &gx.as_view(), n, c, hw, &gg.as_view(), &gb.as_view(), eps, mom, &mut grm.as_view_mut(), &mut grv.as_view_mut(),
        &mut gy.as_view_mut(), &mut gsm.as_view_mut(), &mut gsi.as_view_mut(),
    )
    .unwrap();
    assert_close("bn train y", &g.download(&gy).unwrap(), &y, 1e-4, 1e-4);
    assert_close("bn save_mean", &g.download(&gsm).unwrap(), &sm, 1e-5, 1e-5);
    assert_close("bn save_invstd", &g.download(&gsi).unwrap(), &si, 1e-5, 1e-4);
    assert_close("bn running_mean", &g.download(&grm).unwrap(), &rm, 1e-5, 1e-5);
    assert_close("bn running_var", &g.download(&grv).unwrap(), &rv, 1e-5, 1e-4);
    let mut gye = g.zeros::<f32>(x.len()).unwrap();
    g.batchnorm_forward_eval(&gx.as_view(), n, c, hw, &gg.as_view(), &gb.as_view(), eps, &grm.as_view(), &grv.as_view(), &mut gye.as_view_mut())
        .unwrap();
    assert_close("bn eval y", &g.download(&gye).unwrap(), &ye, 1e-4, 1e-4);
    let (mut gdx, mut gdg, mut gdb) = (g.zeros::<f32>(x.len()).unwrap(), g.zeros::<f32>(c).unwrap(), g.zeros::<f32>(c).unwrap());
    g.batchnorm_backward(
        &gx.as_view(), &gdy.as_view(), n, c, hw, &gg.as_view(), &gsm.as_view(), &gsi.as_view(),
        &mut gdx.as_view_mut(), &mut gdg.as_view_mut(), &mut gdb.as_view_mut(),
    )
    .unwrap();
    assert_close("bn dx", &g.download(&gdx).unwrap(), &dx, 1e-4, 1e-3);
    assert_close("bn dgamma", &g.download(&gdg).unwrap(), &dg, 1e-4, 1e-4);
    assert_close("bn dbeta", &g.download(&gdb).unwrap(), &db, 1e-4, 1e-4);
}

#[test]
fn relu_matches_cpu() {
    let mut r = rng(5);
    let mut x = randv(&mut r, 5000);
    x[0] = 0.0;
    x[1] = -0.0;
    let dy = randv(&mut r, x.len());
    let mut y = vec![0.0; x.len()];
    cpu::relu_forward(&x, &mut y);
    let mut dx = vec![0.0; x.len()];
    cpu::relu_backward(&y, &dy, &mut dx);
    let Some(g) = gpu("relu") else { return };
    let (gx, gdy) = (g.upload(&x).unwrap(), g.upload(&dy).unwrap());
    let (mut gy, mut gdx) = (g.zeros::<f32>(x.len()).unwrap(), g.zeros::<f32>(x.len()).unwrap());
    g.relu_forward(&gx.as_view(), &mut gy.as_view_mut()).unwrap();
    g.relu_backward(&gy.as_view(), &gdy.as_view(), &mut gdx.as_view_mut()).unwrap();
    assert_close("relu y", &g.download(&gy).unwrap(), &y, 0.0, 0.0);
    assert_close("relu dx", &g.download(&gdx).unwrap(), &dx, 0.0, 0.0);
    // The residual join: relu(x + dy), as the CPU model computes it (sum, then ReLU).
    let sum: Vec<f32> = x.iter().zip(&dy).map(|(a, b)| a + b).collect();
    let mut joined = vec![0.0; x.len()];
    cpu::relu_forward(&sum, &mut joined);
    let mut gj = g.zeros::<f32>(x.len()).unwrap();
    g.add_relu_forward(&gx.as_view(), &gdy.as_view(), &mut gj.as_view_mut()).unwrap();
    assert_close("add_relu y", &g.download(&gj).unwrap(), &joined, 0.0, 0.0);
}

/// Indices where two equal-length vectors differ: their count and the first few.
fn differences<T: PartialEq + Copy + std::fmt::Debug>(got: &[T], want: &[T]) -> (usize, Vec<String>) {
    assert_eq!(got.len(), want.len(), "length");
    let diff: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    (diff.len(), diff.iter().take(8).map(|&i| format!("[{i}] gpu {:?} want {:?}", got[i], want[i])).collect())
}

/// Asserts that `count` of `len` Bernoulli(q) trials is within 5σ of q·len.
fn assert_fraction(what: &str, count: usize, len: usize, q: f64) {
    let frac = count as f64 / len as f64;
    let five_sigma = 5.0 * (q * (1.0 - q) / len as f64).sqrt();
    assert!((frac - q).abs() <= five_sigma, "{what}: fraction {frac}, expected {q} ± {five_sigma}");
    eprintln!("{what}: fraction {frac:.5}, expected {q} ± {five_sigma:.5}");
}

#[test]
fn dropout_matches_its_hash_and_the_cpu_op() {
    let len = 1usize << 20;
    let mut r = rng(10);
    let (x, dy) = (randv(&mut r, len), randv(&mut r, len));
    let Some(g) = gpu("dropout") else { return };
    let (gx, gdy) = (g.upload(&x).unwrap(), g.upload(&dy).unwrap());
    // Outputs start as NaN / 7 so that an element the kernel skips cannot pass.
    let forward = |p: f32, seed: u64| {
        let (mut y, mut m) = (g.upload(&vec![f32::NAN; len]).unwrap(), g.upload(&vec![7u8; len]).unwrap());
        g.dropout_forward(p, seed, &gx.as_view(), &mut y.as_view_mut(), &mut m.as_view_mut()).unwrap();
        (g.download(&y).unwrap(), g.download(&m).unwrap(), m)
    };
    for (p, seed) in [(0.5f32, 0x5EED_0000_0000_0001u64), (0.1, 0x5EED_0000_0000_0002)] {
        let (y, mask, gmask) = forward(p, seed);
        // The mask is the host mirror of the kernel's hash, bit for bit.
        let t = dropout_threshold(p);
        let want: Vec<u8> = (0..len as u32).map(|i| dropout_keeps(seed, t, i) as u8).collect();
        let (n, first) = differences(&mask, &want);
        assert!(n == 0, "dropout p={p} mask: {n} elements differ from the host hash, first: {}", first.join(", "));
        assert_fraction(&format!("dropout p={p} dropped"), mask.iter().filter(|&&m| m == 0).count(), len, p as f64);
        // Kept values: the CPU's x·(1/(1−p)) bit for bit (the CPU backward applies exactly that to
        // a given mask), and within 1 ulp of x/(1−p); dropped values are +0.
        let mut want_y = vec![f32::NAN; len];
        cpu::dropout_backward(&x, &mask, p, &mut want_y);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let (n, first) = differences(&bits(&y), &bits(&want_y));
        assert!(n == 0, "dropout p={p} y: {n} values differ from the CPU's, first: {}", first.join(", "));
        let far = (0..len)
            .filter(|&i| mask[i] == 1)
            .filter(|&i| {
                let q = (x[i] as f64 / (1.0 - p as f64)) as f32;
                (y[i].to_bits() as i64 - q.to_bits() as i64).abs() > 1
            })
            .count();
        assert_eq!(far, 0, "dropout p={p}: kept values more than 1 ulp from x/(1-p)");
        assert!((0..len).all(|i| mask[i] == 1 || y[i].to_bits() == 0), "dropout p={p}: a dropped value is not +0");
        // Backward with the same mask: dy·mask/(1−p), as the CPU op.
        let mut gdx = g.upload(&vec![f32::NAN; len]).unwrap();
        g.dropout_backward(p, &gmask.as_view(), &gdy.as_view(), &mut gdx.as_view_mut()).unwrap();
        let mut want_dx = vec![f32::NAN; len];
        cpu::dropout_backward(&dy, &mask, p, &mut want_dx);
        let (n, first) = differences(&bits(&g.download(&gdx).unwrap()), &bits(&want_dx));
        assert!(n == 0, "dropout p={p} dx: {n} values differ from the CPU's, first: {}", first.join(", "));
        // The same seed draws the same mask; another seed an independent one, which disagrees
        // with this one at a fraction 2p(1−p).
        assert!(forward(p, seed).1 == mask, "dropout p={p}: the same seed gave another mask");
        let other = forward(p, seed + 1).1;
        let disagree = mask.iter().zip(&other).filter(|(a, b)| a != b).count();
        assert_fraction(&format!("dropout p={p} masks of seeds s, s+1 disagree"), disagree, len, 2.0 * p as f64 * (1.0 - p as f64));
    }
    // p outside [0, 1) and mismatched lengths are errors, not launches.
    let (mut y, mut m) = (g.zeros::<f32>(len).unwrap(), g.zeros::<u8>(len).unwrap());
    for p in [1.0f32, -0.1, f32::NAN] {
        assert!(g.dropout_forward(p, 1, &gx.as_view(), &mut y.as_view_mut(), &mut m.as_view_mut()).is_err(), "p = {p} accepted");
        assert!(g.dropout_backward(p, &m.as_view(), &gdy.as_view(), &mut y.as_view_mut()).is_err(), "p = {p} accepted");
    }
    assert!(g.dropout_forward(0.5, 1, &gx.as_view(), &mut y.slice_mut(1..), &mut m.as_view_mut()).is_err(), "short y accepted");
    assert!(g.dropout_forward(0.5, 1, &gx.as_view(), &mut y.as_view_mut(), &mut m.slice_mut(1..)).is_err(), "short mask accepted");
    assert!(g.dropout_backward(0.5, &m.slice(1..), &gdy.as_view(), &mut y.as_view_mut()).is_err(), "short mask accepted");
    // p = 0 keeps everything, unscaled.
    let (y0, m0, _) = forward(0.0, 3);
    assert!(m0.iter().all(|&m| m == 1) && y0 == x, "dropout p=0 is not the identity");
}

/// Dropout inside a network, the torchvision-shape VGG head (two layers of p = 0.5): an
/// evaluation forward equals the CPU's, where dropout is the identity; each training forward draws
/// new masks, the same ones again after the seed stream is restarted; the backward runs through them.
#[test]
fn dropout_in_vgg_is_the_identity_in_eval_and_reseedable_in_training() {
    let Some(mut g) = gpu("dropout in vgg11 (torchvision shape)") else { return };
    g.set_tensor_cores(false);
    let g = &*g;
    let (batch, classes) = (2, 10);
    let mut model = models::build("vgg11", Shape::Torchvision, classes, 3).unwrap();
    let mut r = rng(11);
    let x = randv(&mut r, batch * 3 * 32 * 32);
    let want = model.forward(Tensor::from_vec(&[batch, 3, 32, 32], x.clone()), false, &mut r);
    let mut net = GpuNet::new(g, &model, 0.9, 0.0).unwrap();
    drop(model);
    let xd = DeviceTensor::new(g.upload(&x).unwrap(), vec![batch, 3, 32, 32]);
    let logits = |net: &mut GpuNet, train: bool| g.download(net.forward(g, &xd, train).unwrap().buf.as_ref()).unwrap();

    let eval = logits(&mut net, false);
    let scale = want.as_slice().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert_close("vgg11 eval logits", &eval, want.as_slice(), 1e-3 * scale + 1e-6, 1e-3);
    assert!(logits(&mut net, false) == eval, "a second evaluation forward differs");

    net.set_dropout_seed(42);
    let t1 = logits(&mut net, true);
    let t2 = logits(&mut net, true);
    assert!(t1 != eval && t2 != t1, "training forwards must drop (and draw new masks each time)");
    net.set_dropout_seed(42);
    let t3 = logits(&mut net, true);
    assert!(t3 == t1, "the same seed must give the same masks");

    // Backward from the last training forward: finite gradients that reach the first layer.
    let labels = g.upload(&[1u32, 7]).unwrap();
    let out = net.forward(g, &xd, true).unwrap();
    let mut d = g.zeros::<f32>(batch * classes).unwrap();
    g.softmax_cross_entropy(&out.buf.as_view(), batch, classes, &labels.as_view(), Some(&mut d.as_view_mut())).unwrap();
    net.backward(g, DeviceTensor::new(d, vec![batch, classes])).unwrap();
    let grads = net.grads_to_host(g).unwrap();
    assert!(grads.iter().all(|v| v.is_finite()), "non-finite gradient");
    let first = net.layout.params[0].view;
    assert!(grads[first.range()].iter().any(|&v| v != 0.0), "no gradient reached {}", net.layout.params[0].name);
}

#[test]
fn pooling_matches_cpu() {
    let mut r = rng(6);
    // ResNet's 3x3/2 pad 1 max pool, a 2x2/2 VGG pool on an odd size, with repeated values for ties.
    let shapes = [
        Pool2dShape { n: 2, c: 3, h: 11, w: 9, k: 3, stride: 2, pad: 1 },
        Pool2dShape { n: 1, c: 4, h: 7, w: 7, k: 2, stride: 2, pad: 0 },
    ];
    let mut cases = Vec::new();
    for s in &shapes {
        let x: Vec<f32> = (0..s.n * s.c * s.h * s.w).map(|_| (r.gen_range(-4..4) as f32) * 0.5).collect();
        let dy = randv(&mut r, s.out_len());
        let (mut y, mut am, mut dx) = (vec![0.0; s.out_len()], vec![0u32; s.out_len()], vec![0.0; x.len()]);
        cpu::maxpool2d_forward(s, &x, &mut y, &mut am);
        cpu::maxpool2d_backward(s, &dy, &am, &mut dx);
        cases.push((x, dy, y, am, dx));
    }
    // Adaptive windows: global (7x7 -> 1x1), overlapping (10x7 -> 3x4), upsampling (2x2 -> 3x3).
    let adaptive = [(2, 3, 7, 7, 1, 1), (1, 2, 10, 7, 3, 4), (1, 1, 2, 2, 3, 3)];
    let mut acases = Vec::new();
    for &(n, c, h, w, oh, ow) in &adaptive {
        let (x, dy) = (randv(&mut r, n * c * h * w), randv(&mut r, n * c * oh * ow));
        let (mut y, mut dx) = (vec![0.0; dy.len()], vec![0.0; x.len()]);
        cpu::adaptive_avgpool2d_forward(n, c, h, w, oh, ow, &x, &mut y);
        cpu::adaptive_avgpool2d_backward(n, c, h, w, oh, ow, &dy, &mut dx);
        acases.push((x, dy, y, dx));
    }
    let Some(g) = gpu("maxpool / adaptive avgpool") else { return };
    for (s, (x, dy, y, am, dx)) in shapes.iter().zip(&cases) {
        let (gx, gdy) = (g.upload(x).unwrap(), g.upload(dy).unwrap());
        let (mut gy, mut gam, mut gdx) = (g.zeros::<f32>(y.len()).unwrap(), g.zeros::<u32>(y.len()).unwrap(), g.zeros::<f32>(x.len()).unwrap());
        g.maxpool_forward(s, &gx.as_view(), &mut gy.as_view_mut(), &mut gam.as_view_mut()).unwrap();
        g.maxpool_backward(s, &gdy.as_view(), &gam.as_view(), &mut gdx.as_view_mut()).unwrap();
        assert_close(&format!("maxpool {s:?} y"), &g.download(&gy).unwrap(), y, 0.0, 0.0);
        assert_eq!(&g.download(&gam).unwrap(), am, "maxpool {s:?} argmax");
        assert_close(&format!("maxpool {s:?} dx"), &g.download(&gdx).unwrap(), dx, 1e-6, 1e-6);
    }
    for (&(n, c, h, w, oh, ow), (x, dy, y, dx)) in adaptive.iter().zip(&acases) {
        let (gx, gdy) = (g.upload(x).unwrap(), g.upload(dy).unwrap());
        let (mut gy, mut gdx) = (g.zeros::<f32>(y.len()).unwrap(), g.zeros::<f32>(x.len()).unwrap());
        g.adaptive_avgpool_forward(n, c, h, w, oh, ow, &gx.as_view(), &mut gy.as_view_mut()).unwrap();
        g.adaptive_avgpool_backward(n, c, h, w, oh, ow, &gdy.as_view(), &mut gdx.as_view_mut()).unwrap();
        let tag = format!("adaptive avgpool {h}x{w}->{oh}x{ow}");
        assert_close(&format!("{tag} y"), &g.download(&gy).unwrap(), y, 1e-6, 1e-5);
        assert_close(&format!("{tag} dx"), &g.download(&gdx).unwrap(), dx, 1e-6, 1e-5);
    }
}

#[test]
fn softmax_cross_entropy_and_accuracy_match_cpu() {
    let (n, classes) = (37, 100);
    let mut r = rng(7);
    let mut logits: Vec<f32> = randv(&mut r, n * classes).iter().map(|v| v * 8.0).collect();
    let labels: Vec<usize> = (0..n).map(|_| r.gen_range(0..classes)).collect();
    // Row 0: the label ties with the largest logit (counts as correct on both backends).
    let l0 = labels[0];
    logits[l0] = 100.0;
    logits[(l0 + 1) % classes] = 100.0;
    let mut dl = vec![0.0; logits.len()];
    let loss = cpu::softmax_cross_entropy(&logits, n, classes, &labels, Some(&mut dl));
    let (top1, top5) = (cpu::topk_correct(&logits, n, classes, &labels, 1), cpu::topk_correct(&logits, n, classes, &labels, 5));
    let Some(g) = gpu("softmax cross-entropy / top-k accuracy") else { return };
    let lab32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let (gl, glab) = (g.upload(&logits).unwrap(), g.upload(&lab32).unwrap());
    let mut gdl = g.zeros::<f32>(logits.len()).unwrap();
    let gloss = g.softmax_cross_entropy(&gl.as_view(), n, classes, &glab.as_view(), Some(&mut gdl.as_view_mut())).unwrap();
    assert_close("xent loss", &[gloss], &[loss], 1e-5, 1e-5);
    assert_close("xent dlogits", &g.download(&gdl).unwrap(), &dl, 1e-6, 1e-4);
    assert_eq!(g.topk_correct(&gl.as_view(), n, classes, &glab.as_view()).unwrap(), (top1, top5), "top-1/top-5 counts");
}

#[test]
fn sgd_matches_cpu() {
    let mut r = rng(8);
    let len = 3001;
    let (w0, g1, g2) = (randv(&mut r, len), randv(&mut r, len), randv(&mut r, len));
    let mut opt = scadles::optim::Sgd::new(len, 0.9, 5e-4);
    let mut w = w0.clone();
    opt.step(&mut w, &g1, 0.1);
    opt.step(&mut w, &g2, 0.05);
    let Some(g) = gpu("sgd") else { return };
    let (mut gw, gg1, gg2) = (g.upload(&w0).unwrap(), g.upload(&g1).unwrap(), g.upload(&g2).unwrap());
    let mut gbuf = g.zeros::<f32>(len).unwrap();
    g.sgd_step(0.1, 0.9, 5e-4, &mut gw.as_view_mut(), &gg1.as_view(), &mut gbuf.as_view_mut()).unwrap();
    g.sgd_step(0.05, 0.9, 5e-4, &mut gw.as_view_mut(), &gg2.as_view(), &mut gbuf.as_view_mut()).unwrap();
    assert_close("sgd weights", &g.download(&gw).unwrap(), &w, 1e-6, 1e-6);
    assert_close("sgd momentum", &g.download(&gbuf).unwrap(), opt.momentum_buffer(), 1e-6, 1e-6);
}

#[test]
fn topk_pack_and_scatter_match_cpu() {
    let mut r = rng(9);
    // Lengths around the 4096-element block chunk; magnitudes drawn from a few values so that
    // ties at the threshold exercise the lower-index rule; signs and ±0 included.
    let mut cases = Vec::new();
    for (len, k) in [(10usize, 3usize), (4096, 100), (10_000, 1234), (100_003, 1), (50_000, 50_000)] {
        let g: Vec<f32> = (0..len).map(|_| r.gen_range(-20..=20) as f32 * 0.25).collect();
        let res = randv(&mut r, len);
        let cand: Vec<f32> = g.iter().zip(&res).map(|(&g, &e)| 0.375 * g + e).collect();
        let (mut idx, mut val) = (Vec::new(), Vec::new());
        scadles::compress::topk(&g, k, &mut idx, &mut val);
        cases.push((len, k, g, res, cand, idx, val));
    }
    let Some(g) = gpu("top-k / pack / scatter") else { return };
    for (len, k, gv, res, cand, idx, val) in &cases {
        let (dg, dres) = (g.upload(gv).unwrap(), g.upload(res).unwrap());
        let mut dcand = g.zeros::<f32>(*len).unwrap();
        g.pack_weighted(0.375, &dg.as_view(), &dres.as_view(), &mut dcand.as_view_mut()).unwrap();
        assert_close(&format!("pack len={len}"), &g.download(&dcand).unwrap(), cand, 1e-6, 1e-6);
        // Top-k on the tie-heavy gradient itself.
        let (gi, gval) = g.topk(&dg.as_view(), *k).unwrap();
        assert_eq!(&g.download(&gi).unwrap(), idx, "topk indices len={len} k={k}");
        assert_eq!(&g.download(&gval).unwrap(), val, "topk values len={len} k={k}");
        // Scatter the pairs twice (as from two ranks) with a weight, then clear them.
        let mut dense = g.zeros::<f32>(*len).unwrap();
        g.scatter_add(&gi.as_view(), &gval.as_view(), 0.5, &mut dense.as_view_mut()).unwrap();
        g.scatter_add(&gi.as_view(), &gval.as_view(), 0.5, &mut dense.as_view_mut()).unwrap();
        let mut want = vec![0.0f32; *len];
        for (&i, &v) in idx.iter().zip(val) {
            want[i as usize] += v;
        }
        assert_close(&format!("scatter_add len={len}"), &g.download(&dense).unwrap(), &want, 1e-6, 1e-6);
        g.scatter_zero(&gi.as_view(), &mut dense.as_view_mut()).unwrap();
        assert!(g.download(&dense).unwrap().iter().all(|&v| v == 0.0), "scatter_zero len={len}");
    }
}

#[test]
fn pinned_staging_round_trips() {
    let v: Vec<f32> = (0..10_000).map(|i| i as f32 * 0.5 - 7.0).collect();
    let Some(g) = gpu("pinned staging") else { return };
    let src = g.upload(&v).unwrap();
    let mut host = g.pinned(v.len()).unwrap();
    g.stage_to_host(&src.as_view(), &mut host).unwrap();
    assert_eq!(host.as_slice().unwrap(), &v[..], "device -> pinned");
    for x in host.as_mut_slice().unwrap().iter_mut() {
        *x *= 2.0;
    }
    let mut dst = g.zeros::<f32>(v.len()).unwrap();
    g.stage_from_host(&host, &mut dst.as_view_mut()).unwrap();
    let back = g.download(&dst).unwrap();
    assert!(back.iter().zip(&v).all(|(&b, &a)| b == 2.0 * a), "pinned -> device");
}

