//! Per-device stream rates S^(i) (samples/s): the paper's Table I sets, the reference code's fixed
//! lists, explicit lists and sampled distributions; optional drift of a rate over time; the arrival
//! process.
//!
//! A `RateSpec` is what the user writes (`--rates S1`, `--rates 50,38,12,36`, `--rates normal:64:24`);
//! `RateSpec::resolve` turns it into one rate per rank, deterministically from the run seed.

use std::fmt;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp1, Normal};

use crate::error::{Error, Result};

/// Sampled rates are clipped to at least this many samples/s (a device that streams nothing
/// has no rate; a rate below 1 would also make the wait for one sample exceed a second).
pub const MIN_SAMPLED_RATE: f64 = 1.0;

/// The four sample sets of the paper's Table I (16 devices each in the IID runs).
///
/// The paper gives only mean and standard deviation. A uniform distribution with mean μ and
/// standard deviation σ spans μ ± σ√3, so S1 ≈ [−3.6, 79.6] and S2 ≈ [106, 494]. Each set is
/// drawn within the batch bounds ([`TableSet::resolve_within`]), so S1 is uniform on [8, 79.6]
/// with the default bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSet {
    /// Uniform, mean 38, std 24.
    S1,
    /// Uniform, mean 300, std 112.
    S2,
    /// S′1: normal, mean 64, std 24.
    S1p,
    /// S′2: normal, mean 256, std 28.
    S2p,
}

impl TableSet {
    /// The distribution that Table I describes for this set.
    pub fn distribution(self) -> RateSpec {
        let sqrt3 = 3f64.sqrt();
        match self {
            TableSet::S1 => RateSpec::Uniform {
                lo: 38.0 - 24.0 * sqrt3,
                hi: 38.0 + 24.0 * sqrt3,
            },
            TableSet::S2 => RateSpec::Uniform {
                lo: 300.0 - 112.0 * sqrt3,
                hi: 300.0 + 112.0 * sqrt3,
            },
            TableSet::S1p => RateSpec::Normal {
                mean: 64.0,
                std: 24.0,
            },
            TableSet::S2p => RateSpec::Normal {
                mean: 256.0,
                std: 28.0,
            },
        }
    }

    /// (mean, standard deviation) as printed in Table I.
    pub fn table_mean_std(self) -> (f64, f64) {
        match self {
            TableSet::S1 => (38.0, 24.0),
            TableSet::S2 => (300.0, 112.0),
            TableSet::S1p => (64.0, 24.0),
            TableSet::S2p => (256.0, 28.0),
        }
    }

    /// `ranks` rates drawn from [`Self::distribution`] truncated to `[lo, hi]` (redrawn when outside).
    pub fn resolve_within(self, ranks: usize, seed: u64, lo: f64, hi: f64) -> Result<Vec<f64>> {
        let lo = lo.max(MIN_SAMPLED_RATE);
        if lo > hi || hi.is_nan() {
            crate::bail!(
                Config,
                "--rates {}: the batch bounds [{lo}, {hi}] are empty",
                self.name()
            );
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let draw: Box<dyn Fn(&mut StdRng) -> f64> = match self.distribution() {
            RateSpec::Uniform { lo: a, hi: b } => {
                Box::new(move |r: &mut StdRng| a + (b - a) * r.gen::<f64>())
            }
            RateSpec::Normal { mean, std } => {
                let d = Normal::new(mean, std)
                    .map_err(|e| Error::Config(format!("--rates {}: {e}", self.name())))?;
                Box::new(move |r: &mut StdRng| d.sample(r))
            }
            _ => unreachable!("Table I sets are uniform or normal"),
        };
        (0..ranks)
            .map(|rank| {
                // 10,000 redraws: a set with less than ~0.1% of its mass inside the bounds is an error.
                for _ in 0..10_000 {
                    let x = draw(&mut rng);
                    if (lo..=hi).contains(&x) {
                        return Ok(x);
                    }
                }
                Err(Error::Config(format!(
                    "--rates {}: almost no rate of the set falls within the batch bounds [--b-min {lo}, --b-max {hi}] (rank {rank})",
                    self.name()
                )))
            })
            .collect()
    }

    fn name(self) -> &'static str {
        match self {
            TableSet::S1 => "S1",
            TableSet::S2 => "S2",
            TableSet::S1p => "S1p",
            TableSet::S2p => "S2p",
        }
    }
}

/// The integer rate lists hard-coded in the reference code's launch scripts (spec §4, Table I [C]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeList {
    /// Labelled "Uniform S1" (8 ranks): mean 38.1, std 22.1.
    UniformS1,
    /// Labelled "Uniform S2" (10 ranks). Its mean 257.2 and std 28.5 match S′2 (normal 256 ± 28):
    /// the label in the reference code is wrong.
    UniformS2,
    /// Labelled "Normal S1" (10 ranks): mean 55.4, std 26.2.
    NormalS1,
    /// The VGG19 non-IID scripts (25 ranks): mean 50.9, std 26.7.
    Vgg25,
}

impl CodeList {
    /// The exact list, one rate per rank.
    pub fn rates(self) -> &'static [f64] {
        match self {
            CodeList::UniformS1 => &[50.0, 38.0, 12.0, 36.0, 34.0, 13.0, 82.0, 40.0],
            CodeList::UniformS2 => &[
                270.0, 218.0, 300.0, 246.0, 232.0, 284.0, 284.0, 236.0, 274.0, 228.0,
            ],
            CodeList::NormalS1 => &[92.0, 38.0, 62.0, 42.0, 48.0, 88.0, 90.0, 22.0, 44.0, 28.0],
            CodeList::Vgg25 => &[
                92.0, 22.0, 62.0, 42.0, 48.0, 36.0, 18.0, 38.0, 84.0, 60.0, 108.0, 40.0, 58.0,
                16.0, 44.0, 78.0, 92.0, 28.0, 30.0, 52.0, 84.0, 20.0, 16.0, 38.0, 66.0,
            ],
        }
    }

    /// The name accepted by `--rates`.
    pub fn name(self) -> &'static str {
        match self {
            CodeList::UniformS1 => "code-uniform-s1",
            CodeList::UniformS2 => "code-uniform-s2",
            CodeList::NormalS1 => "code-normal-s1",
            CodeList::Vgg25 => "code-vgg25",
        }
    }

    const ALL: [CodeList; 4] = [
        CodeList::UniformS1,
        CodeList::UniformS2,
        CodeList::NormalS1,
        CodeList::Vgg25,
    ];
}

/// How the per-rank stream rates are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum RateSpec {
    /// A Table I set, sampled per rank from the seed.
    Table(TableSet),
    /// One of the reference code's fixed lists; its length must equal the number of ranks.
    CodeList(CodeList),
    /// An explicit list, one rate per rank.
    List(Vec<f64>),
    /// Uniform on [lo, hi], sampled per rank.
    Uniform { lo: f64, hi: f64 },
    /// Normal(mean, std), sampled per rank.
    Normal { mean: f64, std: f64 },
    /// Exponential with the given mean, sampled per rank.
    Exp { mean: f64 },
}

const RATES_FORMS: &str =
    "S1|S2|S1p|S2p|code-uniform-s1|code-uniform-s2|code-normal-s1|code-vgg25|uniform:LO:HI|normal:MEAN:STD|exp:MEAN|R1,R2,...";

impl RateSpec {
    /// One rate (samples/s) per rank. Sampled specs draw rank 0, 1, … in order from a generator
    /// seeded by `seed`, so the result is reproducible and a smaller job gets a prefix of a larger
    /// job's rates.
    ///
    /// The paper's named sets (S1, S2, S′1, S′2) are drawn within the batch bounds `[b_min, b_max]`
    /// (paper §3.1: its devices' rates all fell inside [8, 1024]): a draw outside is redrawn, i.e.
    /// the set follows Table I's distribution truncated to the bounds. Other sampled forms
    /// (`uniform:`, `normal:`, `exp:`) are drawn as written and only clipped to ≥
    /// [`MIN_SAMPLED_RATE`]; lists are used as given.
    pub fn resolve(&self, ranks: usize, seed: u64, b_min: usize, b_max: usize) -> Result<Vec<f64>> {
        if ranks == 0 {
            crate::bail!(Config, "--rates: the job has 0 ranks; expected at least 1");
        }
        self.validate().map_err(Error::Config)?;
        let fixed = |list: &[f64]| -> Result<Vec<f64>> {
            if list.len() != ranks {
                crate::bail!(
                    Config,
                    "--rates lists {} rates but the job has {} ranks",
                    list.len(),
                    ranks
                );
            }
            Ok(list.to_vec())
        };
        let mut rng = StdRng::seed_from_u64(seed);
        let clip = |x: f64| x.max(MIN_SAMPLED_RATE);
        let rates = match self {
            RateSpec::Table(set) => {
                return set.resolve_within(ranks, seed, b_min as f64, b_max as f64)
            }
            RateSpec::CodeList(c) => fixed(c.rates())?,
            RateSpec::List(v) => fixed(v)?,
            RateSpec::Uniform { lo, hi } => (0..ranks)
                .map(|_| clip(lo + (hi - lo) * rng.gen::<f64>()))
                .collect(),
            RateSpec::Normal { mean, std } => {
                let d = Normal::new(*mean, *std)
                    .map_err(|e| Error::Config(format!("--rates: normal:{mean}:{std}: {e}")))?;
                (0..ranks).map(|_| clip(d.sample(&mut rng))).collect()
            }
            RateSpec::Exp { mean } => (0..ranks)
                .map(|_| clip(mean * rng.sample::<f64, _>(Exp1)))
                .collect(),
        };
        Ok(rates)
    }

    /// Checks the parameters: every listed rate finite and > 0; lo ≤ hi, hi > 0; std ≥ 0; mean > 0.
    fn validate(&self) -> std::result::Result<(), String> {
        let finite = |name: &str, x: f64| {
            if x.is_finite() {
                Ok(())
            } else {
                Err(format!("--rates: {name} {x} is not a finite number"))
            }
        };
        match self {
            RateSpec::Table(_) | RateSpec::CodeList(_) => Ok(()),
            RateSpec::List(v) => {
                if v.is_empty() {
                    return Err("--rates: the list is empty; expected one rate per rank".into());
                }
                for (i, &r) in v.iter().enumerate() {
                    if !(r.is_finite() && r > 0.0) {
                        return Err(format!(
                            "--rates: rate {r} at position {} (rank {i}) must be a finite number > 0",
                            i + 1
                        ));
                    }
                }
                Ok(())
            }
            RateSpec::Uniform { lo, hi } => {
                finite("LO", *lo)?;
                finite("HI", *hi)?;
                if lo > hi {
                    return Err(format!(
                        "--rates: uniform:{lo}:{hi} has LO > HI; expected LO <= HI"
                    ));
                }
                if *hi <= 0.0 {
                    return Err(format!(
                        "--rates: uniform:{lo}:{hi} has HI <= 0; expected HI > 0"
                    ));
                }
                Ok(())
            }
            RateSpec::Normal { mean, std } => {
                finite("MEAN", *mean)?;
                finite("STD", *std)?;
                if *std < 0.0 {
                    return Err(format!(
                        "--rates: normal:{mean}:{std} has STD < 0; expected STD >= 0"
                    ));
                }
                if *mean <= 0.0 {
                    return Err(format!(
                        "--rates: normal:{mean}:{std} has MEAN <= 0; expected MEAN > 0"
                    ));
                }
                Ok(())
            }
            RateSpec::Exp { mean } => {
                finite("MEAN", *mean)?;
                if *mean <= 0.0 {
                    return Err(format!(
                        "--rates: exp:{mean} has MEAN <= 0; expected MEAN > 0"
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Parses `name:A:B…` parameters: exactly `n` numbers after the name.
fn params(s: &str, rest: &str, n: usize, form: &str) -> std::result::Result<Vec<f64>, String> {
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() != n || parts.iter().any(|p| p.trim().is_empty()) {
        return Err(format!("--rates: '{s}' expected {form}"));
    }
    parts
        .iter()
        .map(|p| {
            p.trim().parse::<f64>().map_err(|_| {
                format!(
                    "--rates: '{s}': '{}' is not a number; expected {form}",
                    p.trim()
                )
            })
        })
        .collect()
}

impl FromStr for RateSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let spec = match t.to_ascii_lowercase().as_str() {
            "s1" => RateSpec::Table(TableSet::S1),
            "s2" => RateSpec::Table(TableSet::S2),
            "s1p" | "s'1" | "s′1" => RateSpec::Table(TableSet::S1p),
            "s2p" | "s'2" | "s′2" => RateSpec::Table(TableSet::S2p),
            lower => {
                if let Some(c) = CodeList::ALL.iter().find(|c| c.name() == lower) {
                    RateSpec::CodeList(*c)
                } else if let Some(rest) = lower.strip_prefix("uniform:") {
                    let p = params(t, rest, 2, "uniform:LO:HI")?;
                    RateSpec::Uniform { lo: p[0], hi: p[1] }
                } else if let Some(rest) = lower.strip_prefix("normal:") {
                    let p = params(t, rest, 2, "normal:MEAN:STD")?;
                    RateSpec::Normal {
                        mean: p[0],
                        std: p[1],
                    }
                } else if let Some(rest) = lower.strip_prefix("exp:") {
                    let p = params(t, rest, 1, "exp:MEAN")?;
                    RateSpec::Exp { mean: p[0] }
                } else if lower == "uniform" || lower == "normal" || lower == "exp" {
                    return Err(format!(
                        "--rates: '{t}' needs parameters; expected one of {RATES_FORMS}"
                    ));
                } else {
                    let mut v = Vec::new();
                    for item in t.split(',') {
                        let item = item.trim();
                        match item.parse::<f64>() {
                            Ok(x) => v.push(x),
                            Err(_) => {
                                return Err(format!(
                                    "--rates: '{t}': '{item}' is not a rate; expected one of {RATES_FORMS}"
                                ))
                            }
                        }
                    }
                    RateSpec::List(v)
                }
            }
        };
        spec.validate()?;
        Ok(spec)
    }
}

impl fmt::Display for RateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RateSpec::Table(s) => f.write_str(s.name()),
            RateSpec::CodeList(c) => f.write_str(c.name()),
            RateSpec::List(v) => {
                for (i, r) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{r}")?;
                }
                Ok(())
            }
            RateSpec::Uniform { lo, hi } => write!(f, "uniform:{lo}:{hi}"),
            RateSpec::Normal { mean, std } => write!(f, "normal:{mean}:{std}"),
            RateSpec::Exp { mean } => write!(f, "exp:{mean}"),
        }
    }
}

/// Change of a device's stream rate over time (the paper's §II-A: rates vary with traffic, usage,
/// time of day). Off by default.
///
/// - `Sine`: S(t) = S0 · (1 + a · sin(2πt/P + φ)), with the phase φ drawn uniformly in [0, 2π) from
///   the source's seed (so ranks with different seeds are out of phase). Requires P > 0, 0 ≤ a < 1.
/// - `Walk`: the rate is piecewise constant on intervals [jI, (j+1)I); at each boundary it is
///   multiplied by exp(N(0, σ²)) (seeded), and the multiplier is kept within [1/10, 10] of S0.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Drift {
    #[default]
    None,
    Sine {
        period_s: f64,
        amplitude: f64,
    },
    Walk {
        sigma: f64,
        interval_s: f64,
    },
}

impl Drift {
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        match self {
            Drift::None => Ok(()),
            Drift::Sine {
                period_s,
                amplitude,
            } => {
                if !(period_s.is_finite() && *period_s > 0.0) {
                    return Err(format!(
                        "--drift: sine period {period_s} must be a finite number > 0"
                    ));
                }
                if !(amplitude.is_finite() && (0.0..1.0).contains(amplitude)) {
                    return Err(format!(
                        "--drift: sine amplitude {amplitude} must lie in [0, 1)"
                    ));
                }
                Ok(())
            }
            Drift::Walk { sigma, interval_s } => {
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return Err(format!(
                        "--drift: walk sigma {sigma} must be a finite number >= 0"
                    ));
                }
                if !(interval_s.is_finite() && *interval_s > 0.0) {
                    return Err(format!(
                        "--drift: walk interval {interval_s} must be a finite number > 0"
                    ));
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Drift {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        let two = |rest: &str, form: &str| -> std::result::Result<(f64, f64), String> {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() != 2 {
                return Err(format!("--drift: '{t}' expected {form}"));
            }
            let num = |p: &str| {
                p.trim().parse::<f64>().map_err(|_| {
                    format!(
                        "--drift: '{t}': '{}' is not a number; expected {form}",
                        p.trim()
                    )
                })
            };
            Ok((num(parts[0])?, num(parts[1])?))
        };
        let d = if lower == "none" {
            Drift::None
        } else if let Some(rest) = lower.strip_prefix("sine:") {
            let (period_s, amplitude) = two(rest, "sine:PERIOD:AMPLITUDE")?;
            Drift::Sine {
                period_s,
                amplitude,
            }
        } else if let Some(rest) = lower.strip_prefix("walk:") {
            let (sigma, interval_s) = two(rest, "walk:SIGMA:INTERVAL")?;
            Drift::Walk { sigma, interval_s }
        } else {
            return Err(format!(
                "--drift: '{t}' expected none, sine:PERIOD:AMPLITUDE or walk:SIGMA:INTERVAL"
            ));
        };
        d.validate()?;
        Ok(d)
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::None => f.write_str("none"),
            Drift::Sine {
                period_s,
                amplitude,
            } => write!(f, "sine:{period_s}:{amplitude}"),
            Drift::Walk { sigma, interval_s } => write!(f, "walk:{sigma}:{interval_s}"),
        }
    }
}

/// Both specs travel through configuration files as their `--rates` / `--drift` strings.
macro_rules! serde_as_string {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_string!(RateSpec);
serde_as_string!(Drift);

/// The arrival process of a simulated stream.
///
/// - `Constant`: arrivals exactly 1/S apart (the k-th at k/S), like the reference producer that
///   sleeps a fixed interval between messages.
/// - `Poisson`: exponential inter-arrival times with mean 1/S, seeded.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    #[default]
    Constant,
    Poisson,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(v: &[f64]) -> (f64, f64) {
        let n = v.len() as f64;
        let m = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
        (m, var.sqrt())
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            "S1".parse::<RateSpec>().unwrap(),
            RateSpec::Table(TableSet::S1)
        );
        assert_eq!(
            "s2".parse::<RateSpec>().unwrap(),
            RateSpec::Table(TableSet::S2)
        );
        assert_eq!(
            "S1p".parse::<RateSpec>().unwrap(),
            RateSpec::Table(TableSet::S1p)
        );
        assert_eq!(
            "S'1".parse::<RateSpec>().unwrap(),
            RateSpec::Table(TableSet::S1p)
        );
        assert_eq!(
            "S'2".parse::<RateSpec>().unwrap(),
            RateSpec::Table(TableSet::S2p)
        );
        assert_eq!(
            "S2p".parse::<RateSpec>().unwrap(),
            RateSpec::Table(TableSet::S2p)
        );
        assert_eq!(
            "code-uniform-s2".parse::<RateSpec>().unwrap(),
            RateSpec::CodeList(CodeList::UniformS2)
        );
        assert_eq!(
            "code-vgg25".parse::<RateSpec>().unwrap(),
            RateSpec::CodeList(CodeList::Vgg25)
        );
        assert_eq!(
            "50, 38,12,36.5".parse::<RateSpec>().unwrap(),
            RateSpec::List(vec![50.0, 38.0, 12.0, 36.5])
        );
        assert_eq!(
            "uniform:10:90".parse::<RateSpec>().unwrap(),
            RateSpec::Uniform { lo: 10.0, hi: 90.0 }
        );
        assert_eq!(
            "normal:64:24".parse::<RateSpec>().unwrap(),
            RateSpec::Normal {
                mean: 64.0,
                std: 24.0
            }
        );
        assert_eq!(
            "exp:100".parse::<RateSpec>().unwrap(),
            RateSpec::Exp { mean: 100.0 }
        );
    }

    #[test]
    fn parse_errors_are_one_line_and_name_the_form() {
        assert_eq!(
            "normal:64".parse::<RateSpec>().unwrap_err(),
            "--rates: 'normal:64' expected normal:MEAN:STD"
        );
        assert!("uniform:1:2:3"
            .parse::<RateSpec>()
            .unwrap_err()
            .contains("uniform:LO:HI"));
        assert!("exp:x"
            .parse::<RateSpec>()
            .unwrap_err()
            .contains("'x' is not a number"));
        assert!("50,abc"
            .parse::<RateSpec>()
            .unwrap_err()
            .contains("'abc' is not a rate"));
        assert!("uniform:90:10"
            .parse::<RateSpec>()
            .unwrap_err()
            .contains("LO > HI"));
        assert!("normal:64:-1"
            .parse::<RateSpec>()
            .unwrap_err()
            .contains("STD < 0"));
        assert!("exp:0"
            .parse::<RateSpec>()
            .unwrap_err()
            .contains("MEAN <= 0"));
        let e = "50,0,12".parse::<RateSpec>().unwrap_err();
        assert!(e.contains("rate 0 at position 2"), "{e}");
        for s in ["S3", "", "uniform", "code-uniform-s3"] {
            let e = s.parse::<RateSpec>().unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "S1",
            "S2",
            "S1p",
            "S2p",
            "code-uniform-s1",
            "code-uniform-s2",
            "code-normal-s1",
            "code-vgg25",
            "50,38,12.25,36",
            "uniform:10.5:90",
            "normal:64:24",
            "exp:100",
        ] {
            let spec: RateSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
            assert_eq!(spec.to_string().parse::<RateSpec>().unwrap(), spec);
        }
        let sampled = RateSpec::Uniform {
            lo: 0.1 + 0.2,
            hi: 1.0 / 3.0,
        };
        assert_eq!(sampled.to_string().parse::<RateSpec>().unwrap(), sampled);
        for s in ["none", "sine:60:0.5", "walk:0.1:10"] {
            let d: Drift = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn code_lists_are_exact() {
        let r = RateSpec::CodeList(CodeList::UniformS1)
            .resolve(8, 0, 8, 1024)
            .unwrap();
        assert_eq!(r, vec![50.0, 38.0, 12.0, 36.0, 34.0, 13.0, 82.0, 40.0]);
        let r = RateSpec::CodeList(CodeList::UniformS2)
            .resolve(10, 0, 8, 1024)
            .unwrap();
        assert_eq!(
            r,
            vec![270.0, 218.0, 300.0, 246.0, 232.0, 284.0, 284.0, 236.0, 274.0, 228.0]
        );
        let r = RateSpec::CodeList(CodeList::NormalS1)
            .resolve(10, 0, 8, 1024)
            .unwrap();
        assert_eq!(
            r,
            vec![92.0, 38.0, 62.0, 42.0, 48.0, 88.0, 90.0, 22.0, 44.0, 28.0]
        );
        let r = RateSpec::CodeList(CodeList::Vgg25)
            .resolve(25, 0, 8, 1024)
            .unwrap();
        assert_eq!(r.len(), 25);
        // The spec's summary statistics of the 25-value list: mean 50.9, min 16, max 108.
        let (m, _) = mean_std(&r);
        assert!((m - 50.88).abs() < 1e-9, "{m}");
        assert_eq!(r.iter().cloned().fold(f64::INFINITY, f64::min), 16.0);
        assert_eq!(r.iter().cloned().fold(0.0, f64::max), 108.0);
        // The mislabelled "uniform S2" list: mean 257.2 (spec §4).
        let (m, _) = mean_std(CodeList::UniformS2.rates());
        assert!((m - 257.2).abs() < 1e-9);
    }

    #[test]
    fn list_length_must_match_ranks() {
        let e = "50,38,12"
            .parse::<RateSpec>()
            .unwrap()
            .resolve(4, 1, 8, 1024)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: --rates lists 3 rates but the job has 4 ranks"
        );
        let e = RateSpec::CodeList(CodeList::UniformS1)
            .resolve(16, 1, 8, 1024)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "config: --rates lists 8 rates but the job has 16 ranks"
        );
        assert_eq!(
            "50,38,12,36"
                .parse::<RateSpec>()
                .unwrap()
                .resolve(4, 7, 8, 1024)
                .unwrap(),
            vec![50.0, 38.0, 12.0, 36.0]
        );
    }

    #[test]
    fn nonpositive_or_nonfinite_rates_are_rejected() {
        let e = RateSpec::List(vec![5.0, -3.0])
            .resolve(2, 0, 8, 1024)
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("rate -3 at position 2"), "{e}");
        let e = RateSpec::List(vec![f64::NAN, 3.0])
            .resolve(2, 0, 8, 1024)
            .unwrap_err();
        assert!(e.to_string().contains("position 1"), "{e}");
        assert!(RateSpec::Uniform { lo: 5.0, hi: 1.0 }
            .resolve(2, 0, 8, 1024)
            .is_err());
        assert!(RateSpec::Normal {
            mean: 5.0,
            std: -1.0
        }
        .resolve(2, 0, 8, 1024)
        .is_err());
        assert!(RateSpec::Normal {
            mean: 0.0,
            std: 1.0
        }
        .resolve(2, 0, 8, 1024)
        .is_err());
        assert!(RateSpec::Exp { mean: -1.0 }.resolve(2, 0, 8, 1024).is_err());
        assert!(RateSpec::Table(TableSet::S1)
            .resolve(0, 0, 8, 1024)
            .is_err());
    }

    /// Mean and std of a density `pdf` restricted to [lo, hi] (renormalised), by Simpson's rule.
    fn truncated_moments(pdf: impl Fn(f64) -> f64, lo: f64, hi: f64) -> (f64, f64) {
        let n = 200_000;
        let h = (hi - lo) / n as f64;
        let (mut z, mut m1, mut m2) = (0.0, 0.0, 0.0);
        for i in 0..=n {
            let x = lo + i as f64 * h;
            let w = if i == 0 || i == n {
                1.0
            } else if i % 2 == 1 {
                4.0
            } else {
                2.0
            };
            let p = w * pdf(x);
            z += p;
            m1 += p * x;
            m2 += p * x * x;
        }
        let m = m1 / z;
        (m, (m2 / z - m * m).sqrt())
    }

    #[test]
    fn table_sets_match_table_one_truncated_to_the_batch_bounds() {
        let n = 20000;
        let sqrt3 = 3f64.sqrt();
        let uniform =
            |lo: f64, hi: f64| move |x: f64| if (lo..=hi).contains(&x) { 1.0 } else { 0.0 };
        let normal = |m: f64, s: f64| move |x: f64| (-(x - m) * (x - m) / (2.0 * s * s)).exp();
        let (s1_lo, s1_hi) = (38.0 - 24.0 * sqrt3, 38.0 + 24.0 * sqrt3);
        for (set, expect) in [
            // S1's uniform reaches −3.6: truncated to [8, 79.6] its mean is 43.8, not 38.
            (
                TableSet::S1,
                truncated_moments(uniform(s1_lo, s1_hi), 8.0, s1_hi),
            ),
            (TableSet::S2, (300.0, 112.0)),
            // 1% of N(64, 24) lies below 8: the truncation moves the mean to 64.6 and the std to 23.2.
            (
                TableSet::S1p,
                truncated_moments(normal(64.0, 24.0), 8.0, 1024.0),
            ),
            (TableSet::S2p, (256.0, 28.0)),
        ] {
            let r = RateSpec::Table(set).resolve(n, 42, 8, 1024).unwrap();
            let (m, s) = mean_std(&r);
            // Standard error of the mean is std/√n ≈ 0.7% of std; allow 4 standard errors.
            let tol_m = 4.0 * expect.1 / (n as f64).sqrt();
            assert!(
                (m - expect.0).abs() < tol_m,
                "{set:?}: mean {m} vs {}",
                expect.0
            );
            assert!(
                (s - expect.1).abs() < 0.03 * expect.1,
                "{set:?}: std {s} vs {}",
                expect.1
            );
            assert!(
                r.iter().all(|&x| (8.0..=1024.0).contains(&x)),
                "{set:?} left the bounds"
            );
        }
        let (m, s) = truncated_moments(uniform(s1_lo, s1_hi), 8.0, s1_hi);
        assert!(
            (m - 43.78).abs() < 0.01 && (s - 20.66).abs() < 0.01,
            "{m} {s}"
        );
        // The 16-device S1 draw of seed 1234 had devices at 1.0, 2.5 and 6.3 samples/s when the
        // sets were only clipped at 1: every device now streams at least b_min.
        for set in [TableSet::S1, TableSet::S1p] {
            let r = RateSpec::Table(set).resolve(16, 1234, 8, 1024).unwrap();
            assert!(r.iter().all(|&x| x >= 8.0), "{set:?}: {r:?}");
        }
        // Other bounds are honoured, and bounds with no mass are a one-line error.
        let r = RateSpec::Table(TableSet::S2)
            .resolve(64, 3, 200, 300)
            .unwrap();
        assert!(r.iter().all(|&x| (200.0..=300.0).contains(&x)));
        let e = RateSpec::Table(TableSet::S1p)
            .resolve(4, 3, 900, 1000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--b-min") && !e.contains('\n'), "{e}");
        // Distributions written out are not truncated: only clipped at 1 sample/s.
        let r: Vec<f64> = "uniform:-50:10"
            .parse::<RateSpec>()
            .unwrap()
            .resolve(200, 1, 8, 1024)
            .unwrap();
        assert!(r.contains(&MIN_SAMPLED_RATE));
    }

    #[test]
    fn sampling_is_deterministic_by_seed_and_prefix_stable() {
        for spec in ["S1", "S2p", "uniform:8:80", "normal:100:30", "exp:50"] {
            let spec: RateSpec = spec.parse().unwrap();
            let a = spec.resolve(16, 1234, 8, 1024).unwrap();
            assert_eq!(a, spec.resolve(16, 1234, 8, 1024).unwrap());
            assert_ne!(a, spec.resolve(16, 1235, 8, 1024).unwrap());
            assert_eq!(&a[..4], &spec.resolve(4, 1234, 8, 1024).unwrap()[..]);
        }
    }

    #[test]
    fn exp_mean_matches() {
        let r = RateSpec::Exp { mean: 200.0 }
            .resolve(20000, 3, 8, 1024)
            .unwrap();
        let (m, s) = mean_std(&r);
        assert!((m - 200.0).abs() < 4.0 * 200.0 / (20000f64).sqrt(), "{m}");
        assert!((s - 200.0).abs() < 0.05 * 200.0, "{s}");
    }

    #[test]
    fn drift_parse_and_validate() {
        assert_eq!("none".parse::<Drift>().unwrap(), Drift::None);
        assert_eq!(
            "sine:60:0.25".parse::<Drift>().unwrap(),
            Drift::Sine {
                period_s: 60.0,
                amplitude: 0.25
            }
        );
        assert_eq!(
            "walk:0.1:5".parse::<Drift>().unwrap(),
            Drift::Walk {
                sigma: 0.1,
                interval_s: 5.0
            }
        );
        assert!("sine:60:1".parse::<Drift>().unwrap_err().contains("[0, 1)"));
        assert!("sine:0:0.5".parse::<Drift>().is_err());
        assert!("walk:-1:5".parse::<Drift>().is_err());
        assert!("walk:0.1"
            .parse::<Drift>()
            .unwrap_err()
            .contains("walk:SIGMA:INTERVAL"));
        assert!("wobble".parse::<Drift>().is_err());
    }

    #[test]
    fn serde_uses_the_flag_strings() {
        let v = serde_json::to_string(&RateSpec::Normal {
            mean: 64.0,
            std: 24.0,
        })
        .unwrap();
        assert_eq!(v, "\"normal:64:24\"");
        let back: RateSpec = serde_json::from_str("\"S'2\"").unwrap();
        assert_eq!(back, RateSpec::Table(TableSet::S2p));
        assert!(serde_json::from_str::<RateSpec>("\"normal:1\"").is_err());
        assert_eq!(
            serde_json::to_string(&Arrival::Poisson).unwrap(),
            "\"poisson\""
        );
        let d: Drift = serde_json::from_str("\"sine:10:0.5\"").unwrap();
        assert_eq!(
            d,
            Drift::Sine {
                period_s: 10.0,
                amplitude: 0.5
            }
        );
    }
}
