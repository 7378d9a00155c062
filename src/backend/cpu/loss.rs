//! Softmax cross-entropy averaged over the batch, and top-k accuracy counts.

fn check(logits: &[f32], n: usize, classes: usize, labels: &[usize]) {
    assert_eq!(
        logits.len(),
        n * classes,
        "loss: logits length for n={n} classes={classes}"
    );
    assert_eq!(labels.len(), n, "loss: labels length for n={n}");
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        panic!("loss: label {bad} out of range for {classes} classes");
    }
}

/// Mean over the batch of `−log softmax(logits)[label]`, with the log-sum-exp shifted by the row
/// maximum. When `dlogits` is given it gets `d(mean loss)/d(logits) = (softmax − onehot)/n`.
pub fn softmax_cross_entropy(
    logits: &[f32],
    n: usize,
    classes: usize,
    labels: &[usize],
    dlogits: Option<&mut [f32]>,
) -> f32 {
    check(logits, n, classes, labels);
    if n == 0 {
        return 0.0;
    }
    let mut total = 0.0f64;
    let mut dl = dlogits;
    if let Some(d) = dl.as_deref() {
        assert_eq!(d.len(), logits.len(), "loss: dlogits length");
    }
    for (i, row) in logits.chunks_exact(classes).enumerate() {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
        let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        total += lse - row[labels[i]] as f64;
        if let Some(d) = dl.as_deref_mut() {
            let drow = &mut d[i * classes..][..classes];
            for (j, (o, &v)) in drow.iter_mut().zip(row).enumerate() {
                let p = (v as f64 - lse).exp();
                let t = if j == labels[i] { 1.0 } else { 0.0 };
                *o = ((p - t) / n as f64) as f32;
            }
        }
    }
    (total / n as f64) as f32
}

/// Rows whose label is among the `k` largest logits; on ties a row counts only if strictly fewer
/// than `k` logits are larger than the label's.
pub fn topk_correct(logits: &[f32], n: usize, classes: usize, labels: &[usize], k: usize) -> usize {
    check(logits, n, classes, labels);
    if classes == 0 {
        return 0;
    }
    logits
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &l)| row.iter().filter(|&&v| v > row[l]).count() < k)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::testutil::*;

    fn reference(logits: &[f64], n: usize, classes: usize, labels: &[usize]) -> f64 {
        let mut total = 0.0;
        for i in 0..n {
            let row = &logits[i * classes..(i + 1) * classes];
            let z: f64 = row.iter().map(|v| v.exp()).sum();
            total += -(row[labels[i]].exp() / z).ln();
        }
        total / n as f64
    }

    #[test]
    fn cross_entropy_by_hand() {
        // Uniform logits over 4 classes: ln 4. Row [ln 1, ln 3] with label 1: −ln(3/4).
        let logits = [0.0f32, 0.0, 0.0, 0.0, 0.0, 3f32.ln(), 0.0, 0.0];
        let loss = softmax_cross_entropy(&logits[..4], 1, 4, &[2], None);
        assert!((loss as f64 - 4f64.ln()).abs() < 1e-6, "loss {loss}");
        let mut d = [0.0f32; 2];
        let loss = softmax_cross_entropy(&logits[4..6], 1, 2, &[1], Some(&mut d));
        assert!((loss as f64 + 0.75f64.ln()).abs() < 1e-6, "loss {loss}");
        assert!((d[0] - 0.25).abs() < 1e-6 && (d[1] + 0.25).abs() < 1e-6, "grad {d:?}");
    }

    #[test]
    fn cross_entropy_is_stable_for_large_logits() {
        let logits = [1000.0f32, 0.0, -1000.0];
        let loss = softmax_cross_entropy(&logits, 1, 3, &[1], None);
        assert!((loss - 1000.0).abs() < 1e-3, "loss {loss}");
    }

    #[test]
    fn cross_entropy_matches_reference_and_finite_differences() {
        let (n, classes) = (4, 7);
        let mut rng = rng(1);
        let logits: Vec<f32> = randv(&mut rng, n * classes).iter().map(|v| v * 3.0).collect();
        let labels = [0usize, 6, 3, 3];
        let mut d = vec![f32::NAN; logits.len()];
        let loss = softmax_cross_entropy(&logits, n, classes, &labels, Some(&mut d));
        let l64 = to64(&logits);
        let want = reference(&l64, n, classes, &labels);
        assert!(
            (loss as f64 - want).abs() <= 1e-5 + 1e-5 * want.abs(),
            "loss {loss}, want {want}"
        );
        let nd = numeric_grad(&l64, |lp| reference(lp, n, classes, &labels));
        assert_close("cross-entropy grad", &d, &nd, 1e-5, 1e-4);
    }

    #[test]
    fn topk_by_hand() {
        let logits = [
            0.1f32, 0.5, 0.2, 0.9, // label 3: top-1
            0.8, 0.5, 0.2, 0.9, // label 1: third largest
            0.5, 0.5, 0.5, 0.1, // label 2: tied for first
            0.0, 0.3, 0.2, 0.1, // label 0: last
        ];
        let labels = [3usize, 1, 2, 0];
        assert_eq!(topk_correct(&logits, 4, 4, &labels, 1), 2);
        assert_eq!(topk_correct(&logits, 4, 4, &labels, 2), 2);
        assert_eq!(topk_correct(&logits, 4, 4, &labels, 3), 3);
        assert_eq!(topk_correct(&logits, 4, 4, &labels, 4), 4);
        assert_eq!(topk_correct(&logits, 4, 4, &labels, 0), 0);
    }
}
