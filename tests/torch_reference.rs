//! The CPU ops of `scadles::backend::cpu` against PyTorch: forward values and gradients.
//!
//! The expected values in `tests/data/torch_ref/*.json` were made by PyTorch 2.15.0 in float64 from
//! float32 inputs (each file records its `torch_version`). To regenerate them:
//!
//! ```sh
//! scripts/setup_torch.sh                                   # once: venv with the pinned torch
//! /opt/scadles-torch/bin/python scripts/torch_reference.py # writes tests/data/torch_ref/*.json
//! cargo test --test torch_reference
//! ```
//!
//! Each value is accepted when `|got − ref| ≤ atol + rtol·|ref|`; a failing test lists the first
//! mismatches of every case and array, not just the first one. Output buffers are pre-filled with
//! a large constant so that an op which accumulates into, or skips, a gradient is caught.
use scadles::backend::cpu::*;
use serde_json::Value;
use std::path::PathBuf;

/// Tolerances for f32 arithmetic on these small, well-conditioned cases.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;
/// Batch normalisation divides by a batch standard deviation and subtracts means in its
/// backward, which loses a few more bits in f32.
const BN_ATOL: f64 = 3e-4;
const BN_RTOL: f64 = 1e-3;
/// What every output buffer holds before an op writes it.
const GARBAGE: f32 = 1.0e3;

/// One op's reference file: `{op, torch_version, generator, seed, cases: [...]}`.
fn load(op: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/torch_ref").join(format!("{op}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    assert_eq!(doc["op"], op, "{}: field op", path.display());
    assert!(doc["torch_version"].is_string(), "{}: no torch_version", path.display());
    let cases = doc["cases"].as_array().unwrap_or_else(|| panic!("{}: no cases array", path.display()));
    assert!(!cases.is_empty(), "{}: empty cases", path.display());
    cases.clone()
}

fn name(case: &Value) -> &str {
    case["name"].as_str().expect("case name")
}

fn dim(case: &Value, key: &str) -> usize {
    case["shape"][key].as_u64().unwrap_or_else(|| panic!("{}: shape.{key}", name(case))) as usize
}

fn num(case: &Value, key: &str) -> f64 {
    case[key].as_f64().unwrap_or_else(|| panic!("{}: {key}", name(case)))
}

fn array(case: &Value, group: &str, key: &str) -> Vec<f64> {
    case[group][key]
        .as_array()
        .unwrap_or_else(|| panic!("{}: {group}.{key}", name(case)))
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

/// An input array; the generator stored exact float32 values.
fn input(case: &Value, key: &str) -> Vec<f32> {
    array(case, "inputs", key).into_iter().map(|v| v as f32).collect()
}

/// A float64 reference output.
fn want(case: &Value, key: &str) -> Vec<f64> {
    array(case, "outputs", key)
}

fn has_input(case: &Value, key: &str) -> bool {
    !case["inputs"][key].is_null()
}

/// Collects the mismatches of all cases so that one run reports everything that is off.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    checked: usize,
}

impl Report {
    fn check(&mut self, case: &Value, what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
        self.checked += 1;
        if got.len() != want.len() {
            self.failures.push(format!("{}/{what}: length {} but reference has {}", name(case), got.len(), want.len()));
            return;
        }
        let bad: Vec<(usize, f32, f64)> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (&g, &w))| (g as f64 - w).abs().partial_cmp(&(atol + rtol * w.abs())).is_none_or(|o| o.is_gt()))
            .map(|(i, (&g, &w))| (i, g, w))
            .collect();
        if !bad.is_empty() {
            let first: Vec<String> =
                bad.iter().take(5).map(|(i, g, w)| format!("[{i}] got {g} want {w} (diff {:.3e})", (*g as f64 - w).abs())).collect();
            self.failures.push(format!("{}/{what}: {} of {} off; first: {}", name(case), bad.len(), got.len(), first.join(", ")));
        }
    }

    fn finish(self, op: &str) {
        assert!(self.checked > 0, "{op}: nothing was checked");
        assert!(self.failures.is_empty(), "{op}: {} mismatching arrays:\n{}", self.failures.len(), self.failures.join("\n"));
    }
}

#[test]
fn conv2d_matches_torch() {
    let mut report = Report::default();
    for case in load("conv2d") {
        let s = Conv2dShape {
            n: dim(&case, "n"),
            c_in: dim(&case, "c_in"),
            h: dim(&case, "h"),
            w: dim(&case, "w"),
            c_out: dim(&case, "c_out"),
            kh: dim(&case, "kh"),
            kw: dim(&case, "kw"),
            stride: dim(&case, "stride"),
            pad: dim(&case, "pad"),
        };
        assert_eq!((s.h_out(), s.w_out()), (dim(&case, "oh"), dim(&case, "ow")), "{}: output size", name(&case));
        let (x, w, dy) = (input(&case, "x"), input(&case, "w"), input(&case, "dy"));
        let bias = has_input(&case, "b").then(|| input(&case, "b"));
        let mut ws = Vec::new();

        let mut y = vec![GARBAGE; s.out_len()];
        conv2d_forward(&s, &x, &w, bias.as_deref(), &mut y, &mut ws);
        report.check(&case, "y", &y, &want(&case, "y"), ATOL, RTOL);

        let mut dx = vec![GARBAGE; x.len()];
        let mut dw = vec![GARBAGE; w.len()];
        let mut db = vec![GARBAGE; s.c_out];
        conv2d_backward(&s, &x, &w, &dy, Some(&mut dx), &mut dw, bias.as_ref().map(|_| &mut db[..]), &mut ws);
        report.check(&case, "dx", &dx, &want(&case, "dx"), ATOL, RTOL);
        report.check(&case, "dw", &dw, &want(&case, "dw"), ATOL, RTOL);
        if bias.is_some() {
            report.check(&case, "db", &db, &want(&case, "db"), ATOL, RTOL);
        }

        // The first layer of a network needs no dx: dw must not depend on whether dx is asked for.
        let mut dw2 = vec![GARBAGE; w.len()];
        conv2d_backward(&s, &x, &w, &dy, None, &mut dw2, None, &mut ws);
        report.check(&case, "dw (no dx)", &dw2, &want(&case, "dw"), ATOL, RTOL);
    }
    report.finish("conv2d");
}

#[test]
fn batchnorm2d_matches_torch() {
    let mut report = Report::default();
    for case in load("batchnorm2d") {
        let (n, c) = (dim(&case, "n"), dim(&case, "c"));
        let hw = dim(&case, "h") * dim(&case, "w");
        let (eps, momentum) = (num(&case, "eps") as f32, num(&case, "momentum") as f32);
        let (x, gamma, beta) = (input(&case, "x"), input(&case, "gamma"), input(&case, "beta"));
        let (mut running_mean, mut running_var) = (input(&case, "running_mean"), input(&case, "running_var"));
        let mut y = vec![GARBAGE; x.len()];
        match case["mode"].as_str() {
            Some("train") => {
                let mut save_mean = vec![GARBAGE; c];
                let mut save_invstd = vec![GARBAGE; c];
                batchnorm2d_forward_train(
                    &x,
                    n,
                    c,
                    hw,
                    &gamma,
                    &beta,
                    eps,
                    momentum,
                    &mut running_mean,
                    &mut running_var,
                    &mut y,
                    &mut save_mean,
                    &mut save_invstd,
                );
                report.check(&case, "y", &y, &want(&case, "y"), BN_ATOL, BN_RTOL);
                report.check(&case, "running_mean", &running_mean, &want(&case, "running_mean"), BN_ATOL, BN_RTOL);
                // PyTorch updates the running variance with the unbiased batch variance.
                report.check(&case, "running_var", &running_var, &want(&case, "running_var"), BN_ATOL, BN_RTOL);
                report.check(&case, "save_mean", &save_mean, &want(&case, "save_mean"), BN_ATOL, BN_RTOL);
                report.check(&case, "save_invstd", &save_invstd, &want(&case, "save_invstd"), BN_ATOL, BN_RTOL);

                let dy = input(&case, "dy");
                let mut dx = vec![GARBAGE; x.len()];
                let mut dgamma = vec![GARBAGE; c];
                let mut dbeta = vec![GARBAGE; c];
                batchnorm2d_backward(
                    &x,
                    &dy,
                    n,
                    c,
                    hw,
                    &gamma,
                    &save_mean,
                    &save_invstd,
                    &mut dx,
                    &mut dgamma,
                    &mut dbeta,
                );
                report.check(&case, "dx", &dx, &want(&case, "dx"), BN_ATOL, BN_RTOL);
                report.check(&case, "dgamma", &dgamma, &want(&case, "dgamma"), BN_ATOL, BN_RTOL);
                report.check(&case, "dbeta", &dbeta, &want(&case, "dbeta"), BN_ATOL, BN_RTOL);
            }
            Some("eval") => {
                let (rm0, rv0) = (running_mean.clone(), running_var.clone());
                batchnorm2d_forward_eval(&x, n, c, hw, &gamma, &beta, eps, &running_mean, &running_var, &mut y);
                report.check(&case, "y", &y, &want(&case, "y"), BN_ATOL, BN_RTOL);
                assert_eq!((running_mean, running_var), (rm0, rv0), "{}: eval mode changed the running statistics", name(&case));
            }
            other => panic!("{}: unknown mode {other:?}", name(&case)),
        }
    }
    report.finish("batchnorm2d");
}

#[test]
fn linear_matches_torch() {
    let mut report = Report::default();
    for case in load("linear") {
        let (n, in_f, out_f) = (dim(&case, "n"), dim(&case, "in_f"), dim(&case, "out_f"));
        let (x, w, b, dy) = (input(&case, "x"), input(&case, "w"), input(&case, "b"), input(&case, "dy"));
        let mut y = vec![GARBAGE; n * out_f];
        linear_forward(n, in_f, out_f, &x, &w, Some(&b), &mut y);
        report.check(&case, "y", &y, &want(&case, "y"), ATOL, RTOL);

        let mut dx = vec![GARBAGE; x.len()];
        let mut dw = vec![GARBAGE; w.len()];
        let mut db = vec![GARBAGE; out_f];
        linear_backward(n, in_f, out_f, &x, &w, &dy, Some(&mut dx), &mut dw, Some(&mut db));
        report.check(&case, "dx", &dx, &want(&case, "dx"), ATOL, RTOL);
        report.check(&case, "dw", &dw, &want(&case, "dw"), ATOL, RTOL);
        report.check(&case, "db", &db, &want(&case, "db"), ATOL, RTOL);

        let mut dw2 = vec![GARBAGE; w.len()];
        linear_backward(n, in_f, out_f, &x, &w, &dy, None, &mut dw2, None);
        report.check(&case, "dw (no dx, db)", &dw2, &want(&case, "dw"), ATOL, RTOL);
    }
    report.finish("linear");
}

#[test]
fn softmax_cross_entropy_matches_torch() {
    let mut report = Report::default();
    for case in load("softmax_cross_entropy") {
        let (n, classes) = (dim(&case, "n"), dim(&case, "classes"));
        let logits = input(&case, "logits");
        let labels: Vec<usize> = case["inputs"]["labels"]
            .as_array()
            .expect("labels")
            .iter()
            .map(|v| v.as_u64().expect("label") as usize)
            .collect();
        let want_loss = case["outputs"]["loss"].as_f64().expect("loss");
        let mut dlogits = vec![GARBAGE; logits.len()];
        let loss = softmax_cross_entropy(&logits, n, classes, &labels, Some(&mut dlogits));
        report.check(&case, "loss", &[loss], &[want_loss], ATOL, RTOL);
        report.check(&case, "dlogits", &dlogits, &want(&case, "dlogits"), ATOL, RTOL);
        // Without dlogits (evaluation) the loss is the same.
        let loss_only = softmax_cross_entropy(&logits, n, classes, &labels, None);
        report.check(&case, "loss (no dlogits)", &[loss_only], &[want_loss], ATOL, RTOL);
    }
    report.finish("softmax_cross_entropy");
}

#[test]
fn maxpool2d_matches_torch() {
    let mut report = Report::default();
    for case in load("maxpool2d") {
        let s = Pool2dShape {
            n: dim(&case, "n"),
            c: dim(&case, "c"),
            h: dim(&case, "h"),
            w: dim(&case, "w"),
            k: dim(&case, "k"),
            stride: dim(&case, "stride"),
            pad: dim(&case, "pad"),
        };
        let out_len = s.n * s.c * dim(&case, "oh") * dim(&case, "ow");
        let (x, dy) = (input(&case, "x"), input(&case, "dy"));
        let mut y = vec![GARBAGE; out_len];
        let mut argmax = vec![0u32; out_len];
        maxpool2d_forward(&s, &x, &mut y, &mut argmax);
        report.check(&case, "y", &y, &want(&case, "y"), ATOL, RTOL);
        let mut dx = vec![GARBAGE; x.len()];
        maxpool2d_backward(&s, &dy, &argmax, &mut dx);
        report.check(&case, "dx", &dx, &want(&case, "dx"), ATOL, RTOL);
    }
    report.finish("maxpool2d");
}

#[test]
fn adaptive_avgpool2d_matches_torch() {
    let mut report = Report::default();
    for case in load("adaptive_avgpool2d") {
        let (n, c, h, w) = (dim(&case, "n"), dim(&case, "c"), dim(&case, "h"), dim(&case, "w"));
        let (oh, ow) = (dim(&case, "oh"), dim(&case, "ow"));
        let (x, dy) = (input(&case, "x"), input(&case, "dy"));
        let mut y = vec![GARBAGE; n * c * oh * ow];
        adaptive_avgpool2d_forward(n, c, h, w, oh, ow, &x, &mut y);
        report.check(&case, "y", &y, &want(&case, "y"), ATOL, RTOL);
        let mut dx = vec![GARBAGE; x.len()];
        adaptive_avgpool2d_backward(n, c, h, w, oh, ow, &dy, &mut dx);
        report.check(&case, "dx", &dx, &want(&case, "dx"), ATOL, RTOL);
    }
    report.finish("adaptive_avgpool2d");
}
