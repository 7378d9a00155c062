//! The paper's published values that `scadles report` sets beside ours, each with its source tag
//! as in the spec (`shared/spec/scadles-paper.md` §0):
//!
//! - [P]: stated in the paper (text, table cell or equation);
//! - [P-fig]: read off a rendered figure by eye (about ±5% of the axis range);
//! - [C]: stated in the authors' code;
//! - [I]: inferred or computed from the above, stated in no source.
//!
//! Sections follow the paper's numbering; add an item's values in its own section.
use crate::stream::{CodeList, TableSet};

/// Where a published value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    P,
    PFig,
    C,
    I,
}

impl Source {
    /// The tag as printed beside a value: `[P]`, `[P-fig]`, `[C]`, `[I]`.
    pub fn tag(self) -> &'static str {
        match self {
            Source::P => "[P]",
            Source::PFig => "[P-fig]",
            Source::C => "[C]",
            Source::I => "[I]",
        }
    }
}

/// One published value: the number used for ratios and differences, the text as published (which
/// may carry its own qualifier, e.g. `<3` or `≈1–1.4`), and its source.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Published {
    pub value: f64,
    pub text: &'static str,
    pub source: Source,
}

const fn p(value: f64, text: &'static str) -> Published {
    Published {
        value,
        text,
        source: Source::P,
    }
}

const fn fig(value: f64, text: &'static str) -> Published {
    Published {
        value,
        text,
        source: Source::PFig,
    }
}

const fn inferred(value: f64, text: &'static str) -> Published {
    Published {
        value,
        text,
        source: Source::I,
    }
}

// ---------------------------------------------------------------------------------------------
// Settings shared by the evaluation.

/// The seed of every reference script [C]; ours draws rates and partitions from it.
pub const SEED: u64 = 1234;
/// The batch bounds b_min, b_max of the evaluation [P]; the named rate sets are drawn within them.
pub const B_MIN: usize = 8;
pub const B_MAX: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Table I — devices sampled with varying streaming rates (samples/s), 16 devices in the IID runs.

/// One row of Table I.
pub struct RateSetRow {
    pub set: TableSet,
    /// As printed: S1, S2, S′1, S′2.
    pub name: &'static str,
    /// The name `--rates` accepts.
    pub flag: &'static str,
    pub distribution: &'static str,
    pub mean: Published,
    pub std: Published,
}

pub const TABLE1: [RateSetRow; 4] = [
    RateSetRow {
        set: TableSet::S1,
        name: "S1",
        flag: "S1",
        distribution: "uniform",
        mean: p(38.0, "38"),
        std: p(24.0, "24"),
    },
    RateSetRow {
        set: TableSet::S2,
        name: "S2",
        flag: "S2",
        distribution: "uniform",
        mean: p(300.0, "300"),
        std: p(112.0, "112"),
    },
    RateSetRow {
        set: TableSet::S1p,
        name: "S′1",
        flag: "S1p",
        distribution: "normal",
        mean: p(64.0, "64"),
        std: p(24.0, "24"),
    },
    RateSetRow {
        set: TableSet::S2p,
        name: "S′2",
        flag: "S2p",
        distribution: "normal",
        mean: p(256.0, "256"),
        std: p(28.0, "28"),
    },
];

/// The devices of Table I's IID runs.
pub const TABLE1_DEVICES: usize = 16;

/// The reference code's fixed rate lists [C] and the Table I set each is labelled as in the code
/// (index into [`TABLE1`]); the VGG19 list carries no label.
pub const TABLE1_CODE_LISTS: [(CodeList, &str, Option<usize>); 4] = [
    (CodeList::UniformS1, "\"Uniform S1\"", Some(0)),
    (CodeList::UniformS2, "\"Uniform S2\"", Some(1)),
    (CodeList::NormalS1, "\"Normal S1\"", Some(2)),
    (CodeList::Vgg25, "VGG19 scripts (no label)", None),
];

// ---------------------------------------------------------------------------------------------
// Table II — data accumulated with streaming in DDL (persistence, batch 64, Eq. 3), GiB.

/// Model, mean iteration time t (s) at batch 64, stream rate S (samples/s) and the three printed
/// cells at T = 10^3, 10^4, 10^5 iterations [P].
pub const TABLE2: [(&str, f64, f64, [&str; 3]); 4] = [
    ("ResNet152", 1.2, 100.0, ["0.35", "3.5", "34.33"]),
    ("ResNet152", 1.2, 600.0, ["2.06", "20.6", "200.6"]),
    ("VGG19", 1.6, 100.0, ["0.47", "4.69", "46.8"]),
    ("VGG19", 1.6, 600.0, ["2.75", "27.5", "274.83"]),
];

// ---------------------------------------------------------------------------------------------
// Table III — neural networks evaluated.

/// One row of Table III, with the names our model registry uses for it.
pub struct ModelRow {
    /// As printed: ResNet152, VGG19.
    pub model: &'static str,
    /// Our registry's name: the torchvision model the reference code builds [C] (`vgg19_bn`).
    pub ours: &'static str,
    pub params: Published,
    /// As printed: "IID Cifar10", "nonIID Cifar100".
    pub data: &'static str,
    pub classes: usize,
    pub iid: bool,
    pub devices: Published,
    pub labels_per_device: Published,
}

pub const TABLE3: [ModelRow; 4] = [
    ModelRow {
        model: "ResNet152",
        ours: "resnet152",
        params: p(60.2e6, "60.2M"),
        data: "IID Cifar10",
        classes: 10,
        iid: true,
        devices: p(16.0, "16"),
        labels_per_device: p(10.0, "10"),
    },
    ModelRow {
        model: "ResNet152",
        ours: "resnet152",
        params: p(60.2e6, "60.2M"),
        data: "nonIID Cifar10",
        classes: 10,
        iid: false,
        devices: p(10.0, "10"),
        labels_per_device: p(1.0, "1"),
    },
    ModelRow {
        model: "VGG19",
        ours: "vgg19_bn",
        params: p(143.7e6, "143.7M"),
        data: "IID Cifar100",
        classes: 100,
        iid: true,
        devices: p(16.0, "16"),
        labels_per_device: p(100.0, "100"),
    },
    ModelRow {
        model: "VGG19",
        ours: "vgg19_bn",
        params: p(143.7e6, "143.7M"),
        data: "nonIID Cifar100",
        classes: 100,
        iid: false,
        devices: p(25.0, "25"),
        labels_per_device: p(4.0, "4"),
    },
];

/// The head size of the paper's models: torchvision's ImageNet default, used on CIFAR as is [C].
pub const TABLE3_HEAD: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Fig. 1 — latency to collect a mini-batch, 16 devices per rate set.

pub const FIG1_BATCHES: [usize; 4] = [64, 128, 256, 512];

/// Readings of Fig. 1 per set (index into [`TABLE1`]): the largest latency (s) at each batch of
/// [`FIG1_BATCHES`], where the figure gives one [P-fig].
pub const FIG1_MAX: [[Option<Published>; 4]; 4] = [
    [
        Some(fig(4.3, "≈4.3")),
        Some(fig(9.8, "≈9.8")),
        Some(fig(20.0, "≈20")),
        Some(fig(42.0, "≈42")),
    ],
    [None, None, None, Some(fig(3.0, "<3"))],
    [
        Some(fig(2.0, "≈2")),
        Some(fig(4.8, "≈4.8")),
        Some(fig(10.6, "≈10.6")),
        Some(fig(22.0, "≈22")),
    ],
    [None, None, None, Some(fig(1.4, "≈1–1.4"))],
];

/// The one smallest latency read off Fig. 1: S1 at batch 512, ≈ 5 s [P-fig].
pub const FIG1_S1_MIN_512: Published = fig(5.0, "≈5");

// ---------------------------------------------------------------------------------------------
// Fig. 3 — GPU memory in DDL (NVIDIA V100), GB.

/// The batch sizes of Fig. 3(a).
pub const FIG3_BATCHES: [usize; 6] = [32, 128, 256, 512, 1024, 2048];

/// Fig. 3(a) [P-fig]: memory (GB) at each batch of [`FIG3_BATCHES`], per model as
/// [`RUN_MODELS`] (ResNet152 on CIFAR10, VGG19 on CIFAR100).
pub const FIG3A_GB: [[Published; 6]; 2] = [
    [
        fig(2.2, "≈2.2"),
        fig(2.5, "≈2.5"),
        fig(3.0, "≈3.0"),
        fig(4.3, "≈4.3"),
        fig(6.5, "≈6.5"),
        fig(10.6, "≈10.6"),
    ],
    [
        fig(3.8, "≈3.8"),
        fig(4.1, "≈4.1"),
        fig(4.4, "≈4.4"),
        fig(5.9, "≈5.9"),
        fig(8.8, "≈8.8"),
        fig(15.2, "≈15.2"),
    ],
];

/// The optimisers of Fig. 3(b), as `--optimizer` names them, and as printed.
pub const FIG3_OPTIMIZERS: [(&str, &str); 3] = [("sgd", "SGD"), ("nesterov", "Nesterov"), ("adam", "Adam")];

/// Fig. 3(b) [P-fig]: memory (GB) per optimiser of [`FIG3_OPTIMIZERS`], per model (the batch is
/// not stated; the SGD bars lie below Fig. 3(a)'s batch-32 values).
pub const FIG3B_GB: [[Published; 3]; 2] = [
    [fig(1.95, "≈1.95"), fig(2.2, "≈2.2"), fig(2.45, "≈2.45")],
    [fig(3.35, "≈3.35"), fig(4.1, "≈4.1"), fig(4.5, "≈4.5")],
];

// ---------------------------------------------------------------------------------------------
// Fig. 4(a) — log10(Q) vs T from Eq. 3.

/// The figure's flat line at log10(Q) = 1 for tS = 0 means S = 10 [I].
pub const FIG4A_RATE: Published = inferred(10.0, "10");
pub const FIG4A_T_MAX: f64 = 5000.0;

/// tS of each curve and its log10(Q) at T = 5000 [P-fig] (tS = 0: the flat line at 1).
pub const FIG4A_AT_T_MAX: [(f64, Published); 4] = [
    (0.0, fig(1.0, "1 (flat)")),
    (10.0, fig(4.7, "≈4.7")),
    (100.0, fig(5.7, "≈5.7")),
    (600.0, fig(6.5, "≈6.5")),
];

// ---------------------------------------------------------------------------------------------
// Fig. 4(b) — gradient synchronisation time vs gradient size, 8 K80 GPUs over 5 Gbps Ethernet.

/// The link and the GPUs of Fig. 4(b) [P].
pub const FIG4B_GBPS: f64 = 5.0;
pub const FIG4B_RANKS: usize = 8;
pub const FIG4B_MB: f64 = 1_048_576.0;

/// Fig. 4(b): the model, its gradient in MB [P] and the synchronisation time in seconds [P-fig].
/// The MB are MiB (2^20 bytes) [I]: ResNet152's 60,192,808 floats are 229.6 MiB, VGG19's
/// 143,678,248 are 548.1 MiB.
pub const FIG4B: [(&str, f64, Published); 3] = [
    ("Transformer", 46.0, fig(0.1, "≈0.1")),
    ("ResNet152", 230.0, fig(1.05, "≈1.05")),
    ("VGG19", 548.0, fig(1.45, "≈1.45")),
];

// ---------------------------------------------------------------------------------------------
// Table IV, Table VI, Figs. 6 and 7 — the shared ScaDLES/DDL runs, 16 devices, IID.

/// The rate sets of these runs in the paper's order, as `--rates` names them, and as printed.
pub const RUN_SETS: [(&str, &str); 4] =
    [("S1", "S1"), ("S2", "S2"), ("S1p", "S′1"), ("S2p", "S′2")];
/// The two models, as the run directories name them, and as printed.
pub const RUN_MODELS: [(&str, &str); 2] = [("resnet152", "ResNet152"), ("vgg19", "VGG19")];

/// Table IV [P]: ScaDLES buffer (samples, per device) at the target (95% top-5 ResNet152, 84%
/// VGG19) under persistence and truncation, and the reduction; indexed [set][model] as
/// [`RUN_SETS`] × [`RUN_MODELS`].
pub const TABLE4: [[(Published, Published, Published); 2]; 4] = [
    [
        (p(2.9e5, "2.9×10^5"), p(129.0, "129"), p(2238.0, "2238×")),
        (p(1e5, "1×10^5"), p(118.0, "118"), p(848.0, "848×")),
    ],
    [
        (p(4.36e6, "4.36×10^6"), p(633.0, "633"), p(6889.0, "6889×")),
        (p(4e6, "4×10^6"), p(523.0, "523"), p(7830.0, "7830×")),
    ],
    [
        (p(6.2e5, "6.2×10^5"), p(143.0, "143"), p(4340.0, "4340×")),
        (p(3.7e5, "3.7×10^5"), p(129.0, "129"), p(2861.0, "2861×")),
    ],
    [
        (p(3.6e6, "3.6×10^6"), p(384.0, "384"), p(9429.0, "9429×")),
        (p(2.5e6, "2.5×10^6"), p(360.0, "360"), p(6956.0, "6956×")),
    ],
];

/// Table V [P]: adaptive compression, IID, per model ([`RUN_MODELS`]) and (CR, δ) in [`TABLE5_GRID`]
/// order: CNC ratio (fraction of iterations compressed), accuracy (top-5, %), floats sent to the
/// target. VGG19's fourth δ is printed 0.04 in the paper, almost certainly 0.4.
pub const TABLE5_GRID: [(f64, f64); 8] = [(0.1, 0.1), (0.1, 0.2), (0.1, 0.3), (0.1, 0.4), (0.01, 0.1), (0.01, 0.2), (0.01, 0.3), (0.01, 0.4)];
pub const TABLE5: [[(Published, Published, Published); 8]; 2] = [
    [
        (p(0.29, "0.29"), p(97.55, "97.55%"), p(4.43e11, "4.43×10^11")),
        (p(0.99, "0.99"), p(96.81, "96.81%"), p(0.56e11, "0.56×10^11")),
        (p(1.0, "1.0"), p(98.41, "98.41%"), p(0.4e11, "0.4×10^11")),
        (p(1.0, "1.0"), p(98.57, "98.57%"), p(0.4e11, "0.4×10^11")),
        (p(0.0, "0"), p(97.39, "97.39%"), p(6.02e11, "6.02×10^11")),
        (p(0.17, "0.17"), p(97.47, "97.47%"), p(4.99e11, "4.99×10^11")),
        (p(0.43, "0.43"), p(96.72, "96.72%"), p(2.56e11, "2.56×10^11")),
        (p(0.99, "0.99"), p(94.97, "94.97%"), p(6.32e8, "6.32×10^8")),
    ],
    [
        (p(0.0, "0"), p(85.45, "85.45%"), p(1.3e12, "1.3×10^12")),
        (p(0.08, "0.08"), p(84.74, "84.74%"), p(1.19e12, "1.19×10^12")),
        (p(1.0, "1.0"), p(81.91, "81.91%"), p(1.3e10, "1.3×10^10")),
        (p(1.0, "1.0"), p(81.78, "81.78%"), p(1.3e10, "1.3×10^10")),
        (p(0.0, "0"), p(84.68, "84.68%"), p(1.3e12, "1.3×10^12")),
        (p(0.0, "0"), p(83.98, "83.98%"), p(1.3e12, "1.3×10^12")),
        (p(0.0, "0"), p(83.94, "83.94%"), p(1.3e12, "1.3×10^12")),
        (p(0.004, "0.004"), p(84.39, "84.39%"), p(1.29e12, "1.29×10^12")),
    ],
];

/// Table VI [P]: accuracy drop (percentage points, ScaDLES − DDL), buffer reduction (GB) and
/// speedup to the target, indexed [set][model] as [`TABLE4`].
pub const TABLE6: [[(Published, Published, Published); 2]; 4] = [
    [
        (p(-0.06, "−0.06%"), p(0.6, "0.6"), p(1.89, "1.89×")),
        (p(-1.93, "−1.93%"), p(0.26, "0.26"), p(1.56, "1.56×")),
    ],
    [
        (p(-0.32, "−0.32%"), p(5.9, "5.9"), p(1.15, "1.15×")),
        (p(-4.18, "−4.18%"), p(3.91, "3.91"), p(2.83, "2.83×")),
    ],
    [
        (p(-0.13, "−0.13%"), p(0.8, "0.8"), p(3.29, "3.29×")),
        (p(-2.03, "−2.03%"), p(0.35, "0.35"), p(2.06, "2.06×")),
    ],
    [
        (p(-0.21, "−0.21%"), p(4.03, "4.03"), p(1.42, "1.42×")),
        (p(-1.59, "−1.59%"), p(2.58, "2.58"), p(2.13, "2.13×")),
    ],
];

/// Bytes of one stored sample (32×32×3 uint8), as Table II's GB are computed [I].
pub const SAMPLE_BYTES: f64 = 3072.0;

/// Fig. 6 [P]: how much faster ScaDLES converges than DDL, per set and model, where the text
/// says (S1 and S′1); `None` where the paper gives no factor.
pub const FIG6_SPEEDUP: [[Option<Published>; 2]; 4] = [
    [Some(p(3.33, "3.33×")), Some(p(1.92, "1.92×"))],
    [None, None],
    [Some(p(3.6, "≈3.6×")), Some(p(4.0, "≈4×"))],
    [None, None],
];

/// Fig. 7 [P]: how many times more DDL buffers than ScaDLES under persistence, per set and model.
pub const FIG7_DDL_OVER_SCADLES: [[Published; 2]; 4] = [
    [p(2.0, "2×"), p(3.5, "3.5×")],
    [p(3.6, "3.6×"), p(641.0, "641×")],
    [p(4.7, "4.7×"), p(5.0, "5×")],
    [p(3.9, "3.9×"), p(42.0, "42×")],
];

/// Fig. 7 [P-fig]: log10 buffer samples at the end, (DDL, ScaDLES) per model, for S1 and S2 (the
/// only panels the spec reads); `None` for S′1 and S′2.
pub const FIG7_END_LOG10: [Option<[(Published, Published); 2]>; 4] = [
    Some([
        (fig(5.75, "≈5.75"), fig(5.45, "≈5.45")),
        (fig(5.5, "≈5.5"), fig(5.0, "≈5.0")),
    ]),
    Some([
        (fig(6.8, "≈6.8"), fig(6.25, "≈6.25")),
        (fig(6.75, "≈6.75"), fig(5.0, "≈5.0")),
    ]),
    None,
    None,
];

// ---------------------------------------------------------------------------------------------
// Figs. 2, 8 and 9 — non-IID training: 10 devices × 1 label (CIFAR-10), 25 × 4 (CIFAR-100).

/// The (α, β) settings of Figs. 8 and 9 [P], as `--inject` takes them and as printed; the last is
/// no injection.
pub const NONIID_INJECT: [(&str, &str); 5] = [
    ("0.5,0.5", "(.5,.5)"),
    ("0.25,0.25", "(.25,.25)"),
    ("0.1,0.1", "(.1,.1)"),
    ("0.05,0.05", "(.05,.05)"),
    ("none", "no injection"),
];

/// The run-directory name of an `--inject` value, as `paper_inject_name` in scripts/paper/lib.sh
/// writes it: `a0.5-b0.5`, …, `none`.
pub fn inject_name(inject: &str) -> String {
    match inject.split_once(',') {
        Some((a, b)) => format!("a{a}-b{b}"),
        None => inject.to_string(),
    }
}

/// The devices of the non-IID CIFAR-10 runs [P].
pub const NONIID_DEVICES: usize = 10;

/// Fig. 2 [P-fig]: final top-5 accuracy (%), (IID, non-IID), for ResNet152/CIFAR-10 (16 devices
/// IID, 10 × 1 label non-IID) and VGG19/CIFAR-100 (16 IID, 25 × 4 labels).
pub const FIG2_TOP5: [(Published, Published); 2] = [
    (fig(97.5, "≈97–98%"), fig(56.5, "≈55–58%")),
    (fig(88.5, "≈88–89%"), fig(31.0, "≈30–32%")),
];

/// Fig. 8 [P-fig]: final top-5 accuracy (%) per [`NONIID_INJECT`] setting, (a) ResNet152/CIFAR-10
/// (~250 epochs) and (b) VGG19/CIFAR-100 (~200 epochs).
pub const FIG8_TOP5: [[Published; 5]; 2] = [
    [
        fig(92.5, "≈90–95%"),
        fig(87.5, "≈85–90%"),
        fig(74.0, "≈74%"),
        fig(67.0, "≈67%"),
        fig(58.0, "≈58%"),
    ],
    [
        fig(79.0, "≈79%"),
        fig(79.0, "≈79%"),
        fig(76.0, "≈76%"),
        fig(74.0, "≈74%"),
        fig(30.0, "≈30%"),
    ],
];

/// Fig. 9 [P-fig]: KB injected per iteration per [`NONIID_INJECT`] setting with injection (the
/// first four), per rate set as [`RUN_SETS`]. The value is the median where the figure gives one,
/// else the middle of the range, else the bound. They match ⌈α·D⌉ · β·S̄ · 3 KB with D = 10 [I],
/// i.e. what one device receives per iteration.
pub const FIG9_KB: [[Published; 4]; 4] = [
    [fig(330.0, "≈200–500, median ≈330"), fig(107.5, "≈50–165"), fig(17.5, "≈10–25"), fig(15.0, "<15")],
    [fig(2300.0, "≈1200–2800, median ≈2300"), fig(600.0, "≈300–900"), fig(100.0, "≈100"), fig(50.0, "≈50")],
    [fig(420.0, "≈300–680, median ≈420"), fig(132.5, "≈60–205"), fig(20.0, "≈20"), fig(10.0, "≈10")],
    [fig(1900.0, "≈1700–2100, median ≈1900"), fig(565.0, "≈490–640"), fig(80.0, "≈80"), fig(40.0, "≈40")],
];

/// The paper's stated average overhead, 150–2000 KB per iteration [P].
pub const FIG9_AVERAGE_KB: Published = p(1075.0, "150–2000 KB");

/// Bytes the paper counts per injected sample: "each CIFAR sample is ~3 KB" [P] (32×32×3 uint8),
/// which its Fig. 9 values match [I]. (Its Kafka messages carry float32 1×3×32×32 = 12 288 B [C],
/// four times as much, but the bulk simulation that produced the figures injects dataset samples.)
pub const FIG9_SAMPLE_BYTES: f64 = 3072.0;
/// The float32 Kafka payload per sample [C].
pub const KAFKA_SAMPLE_BYTES: f64 = 12288.0;
