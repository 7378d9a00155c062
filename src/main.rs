//! `scadles`: one binary, launched with `mpirun -np N` (one rank per edge device).
use clap::{Parser, Subcommand};
use scadles::cli::TrainArgs;
use scadles::config::{Policy, RunConfig};
use scadles::dist::World;
use scadles::error::{Error, Result};
use scadles::train::Compute;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "scadles", version, about = "Deep learning over streaming data at the edge (ScaDLES), one MPI rank per device")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Train one run (run under `mpirun -np N`)
    Train(TrainArgs),
    /// Train ScaDLES and the DDL baseline on the same streams and compare time-to-target
    Compare(CompareArgs),
    /// List every model with its parameter count
    Models(ModelsArgs),
    /// Print the paper's Table II (data accumulated under persistence, Eq. 3)
    Table2,
    /// Regenerate one of the paper's tables or figures (CSV, table.md beside the paper, PNG/SVG)
    Report(scadles::report::ReportArgs),
    /// Benchmarks: training step, top-k selection, GEMM, sparse vs dense exchange
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Probe the GPUs this rank can use
    Devices,
}

#[derive(clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(clap::Args)]
struct ModelsArgs {
    /// Head size for the torchvision-shape column
    #[arg(long, default_value_t = 1000)]
    num_classes: usize,
    /// Head size for the CIFAR-shape column
    #[arg(long, default_value_t = 10)]
    cifar_classes: usize,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Images/s of one training step (forward + backward + SGD) per model
    Step(scadles::train::bench::StepBenchArgs),
    /// Top-k selection throughput on a large gradient buffer
    Topk(scadles::train::bench::TopkBenchArgs),
    /// GEMM throughput (TFLOP/s) of the CPU sgemm or the CUDA GEMM kernels
    Gemm(scadles::train::bench::GemmBenchArgs),
    /// Sparse (index, value) exchange against dense allreduce (run under mpirun)
    Exchange(scadles::train::bench::ExchangeBenchArgs),
    /// Peak resident memory of a training process per batch size and optimiser (Fig. 3)
    Memory(scadles::train::bench::MemoryBenchArgs),
}

/// This process's rank as the launcher tells it, before MPI is initialised (to print once).
fn launcher_rank() -> usize {
    ["PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Config(_) => 2,
        Error::Interrupted(_) => 130,
        _ => 1,
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand) {
                let _ = e.print();
                std::process::exit(0);
            }
            if launcher_rank() == 0 {
                let msg = e.to_string();
                let first = msg.lines().next().unwrap_or("invalid arguments").trim_start_matches("error: ");
                eprintln!("scadles: error: {first} (see --help)");
            }
            std::process::exit(2);
        }
    };
    let code = match cli.cmd {
        // The stop handlers go in after MPI_Init, so that the library's own do not replace them.
        Cmd::Train(a) => with_world(|w| {
            scadles::train::install_stop_handlers();
            train(w, &a).map(|_| ())
        }),
        Cmd::Compare(a) => with_world(|w| {
            scadles::train::install_stop_handlers();
            compare(w, &a.train)
        }),
        Cmd::Models(a) => report(models(&a)),
        Cmd::Table2 => {
            print!("{}", scadles::stream::render_table2());
            0
        }
        Cmd::Report(a) => report(scadles::report::main(&a)),
        Cmd::Bench(BenchCmd::Step(a)) => report(scadles::train::bench::step(&a)),
        Cmd::Bench(BenchCmd::Topk(a)) => report(scadles::train::bench::topk(&a)),
        Cmd::Bench(BenchCmd::Gemm(a)) => report(scadles::train::bench::gemm(&a)),
        Cmd::Bench(BenchCmd::Exchange(a)) => with_world(|w| scadles::train::bench::exchange(w, &a)),
        Cmd::Bench(BenchCmd::Memory(a)) => report(scadles::train::bench::memory(&a)),
        Cmd::Devices => {
            match scadles::backend::cuda::probe() {
                Ok(n) => {
                    println!("cuda: {n} GPU(s) visible");
                    for l in scadles::backend::cuda::probe::describe_gpus() {
                        println!("  {l}");
                    }
                }
                Err(e) => println!("cuda: unavailable ({e}); the CPU backend will be used"),
            }
            println!("cpu: {} threads available, GEMM: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), scadles::backend::cpu::blas_name());
            let w = World::init();
            let lib = World::library_version();
            let aware = if scadles::dist::mpi_cuda_support() { "yes (dense GPU steps pass device buffers)" } else { "no (dense GPU steps stage through pinned host memory)" };
            let lib = lib.lines().next().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).unwrap_or_default();
            println!("mpi: rank {} of {}, {lib}; CUDA-aware: {aware}", w.rank(), w.size());
            World::finalize();
            0
        }
    };
    std::process::exit(code);
}

/// Writes `scadles: error: ...` in one write, so that an abort of the job right after cannot cut
/// the line.
fn error_line(e: &Error) {
    use std::io::Write;
    let line = format!("scadles: error: {e}\n");
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

fn report(r: Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            error_line(&e);
            exit_code(&e)
        }
    }
}

/// Runs `f` with MPI initialised. Errors every rank sees alike (configuration, data, divergence)
/// end every rank in order; anything else (an I/O error on one rank) aborts the whole job, so no
/// rank is ever left waiting in a collective.
fn with_world(f: impl FnOnce(&World) -> Result<()>) -> i32 {
    let world = World::init();
    let r = f(&world);
    let code = match &r {
        Ok(()) => 0,
        Err(e) => {
            let symmetric = matches!(e, Error::Config(_) | Error::Data(_) | Error::Diverged(_) | Error::Interrupted(_));
            if world.is_root() || !symmetric {
                error_line(e);
            }
            // An interrupted job ends by MPI_Abort once every rank has written what it must: MPICH's
            // launcher otherwise reports 0 for ranks that exit non-zero after its own SIGINT.
            if (!symmetric || matches!(e, Error::Interrupted(_))) && world.size() > 1 {
                if matches!(e, Error::Interrupted(_)) {
                    world.barrier();
                }
                world.abort(exit_code(e));
            }
            exit_code(e)
        }
    };
    World::finalize();
    code
}

/// Validates, loads and trains one run; rank 0 prints the resolved config and the summary.
fn train(world: &World, args: &TrainArgs) -> Result<scadles::train::Summary> {
    let cfg = args.resolve()?;
    cfg.validate(world.size())?;
    let compute = open_device(world, &cfg)?;
    run_one(world, &cfg, &compute, None, false)
}

fn run_one(world: &World, cfg: &RunConfig, compute: &Compute, out: Option<PathBuf>, quiet: bool) -> Result<scadles::train::Summary> {
    let res = cfg.validate(world.size())?;
    scadles::train::set_threads(scadles::train::threads_per_rank(cfg.threads));
    scadles::backend::cpu::set_conv_algo(cfg.conv_algo);
    let out = out.or_else(|| cfg.out.clone()).unwrap_or_else(scadles::metrics::default_run_dir);
    let mut resolved = cfg.clone();
    resolved.out = Some(out.clone());
    // Data errors come first (a run that cannot load its data leaves no directory behind), then
    // the run directory, then the configuration dump.
    let splits = scadles::train::load_data(cfg, world)?;
    let ok = if world.is_root() { prepare_out(&out, &resolved) } else { Ok(None) };
    if world.any(ok.is_err()) {
        return Err(ok.err().unwrap_or_else(|| Error::Config("rank 0 could not prepare the run directory".into())));
    }
    // Held (rank 0) until the run returns: a second run on the same directory is refused.
    let _lock = ok?;
    if world.is_root() && !quiet {
        eprintln!("scadles {} | {} ranks | MPI: {}", env!("CARGO_PKG_VERSION"), world.size(), World::library_version().lines().next().unwrap_or(""));
        eprintln!("resolved configuration:\n{}", serde_json::to_string_pretty(&resolved).unwrap_or_default());
    }
    let run = scadles::train::Run { cfg, res: &res, world, splits: &splits, out, quiet, compute };
    let s = run.train()?;
    if world.is_root() {
        print_summary(&s);
    }
    Ok(s)
}

/// This rank's node-local index as the launcher tells it (the world rank when none does).
fn local_rank(world: &World) -> usize {
    ["MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"]
        .iter()
        .find_map(|k| std::env::var(k).ok().and_then(|v| v.parse().ok()))
        .unwrap_or(world.rank())
}

/// Resolves `--device` for this rank (GPU = node-local rank mod GPUs on the node) and opens it,
/// kernels compiled. Every rank reports its outcome and rank 0 prints each rank's device. With
/// `--device cuda`, any rank's failure (no driver or GPU, NVRTC missing, a compile error) ends
/// every rank with that rank's one-line error; with `auto`, a rank whose GPU cannot be opened
/// trains on the CPU and the reason is printed.
fn open_device(world: &World, cfg: &RunConfig) -> Result<Compute> {
    use scadles::backend::cuda::{select, Device, DeviceChoice};
    let mut note = None;
    // The GPU engine has SGD only: with auto, another optimiser trains on the CPU (with `cuda`,
    // validation has refused it already).
    let choice = if cfg.device == DeviceChoice::Auto && !cfg.optimizer.on_gpu() {
        note = Some(format!("--optimizer {} runs on the CPU only", cfg.optimizer));
        DeviceChoice::Cpu
    } else {
        cfg.device
    };
    let opened = select(choice, local_rank(world)).and_then(|d| match d {
        Device::Cpu => Ok(Compute::Cpu),
        Device::Cuda(i) => match Compute::open_cuda(i) {
            Err(e) if cfg.device == DeviceChoice::Auto => {
                note = Some(format!("GPU {i} unusable ({}), using the CPU", message(&e)));
                Ok(Compute::Cpu)
            }
            Err(e) => Err(Error::Cuda(format!("--device cuda: GPU {i}: {}", message(&e)))),
            ok => ok,
        },
    });
    // One report per rank: "ok <device>" or "err <message>".
    let mine = match &opened {
        Ok(c) => format!("ok {}{}", c.describe(), note.map(|n| format!(" [auto: {n}]")).unwrap_or_default()),
        Err(e) => format!("err {}", message(e)),
    };
    let reports = world.allgather_strings(&mine);
    let failed: Vec<(usize, &str)> =
        reports.iter().enumerate().filter_map(|(r, s)| s.strip_prefix("err ").map(|m| (r, m))).collect();
    if let Some(&(r, msg)) = failed.first() {
        // Symmetric: every rank returns the same error and rank 0 prints it once.
        let all_same = failed.len() == world.size() && failed.iter().all(|(_, m)| *m == msg);
        return Err(Error::Config(if all_same {
            msg.to_string()
        } else {
            format!("rank {r}: {msg} ({} of {} ranks failed)", failed.len(), world.size())
        }));
    }
    if world.is_root() {
        let devs: Vec<&str> = reports.iter().map(|s| s.trim_start_matches("ok ")).collect();
        if devs.len() == 1 {
            eprintln!("device: {}", devs[0]);
        } else if devs.iter().all(|d| *d == devs[0]) {
            eprintln!("device: {} (all {} ranks)", devs[0], devs.len());
        } else {
            for (r, d) in devs.iter().enumerate() {
                eprintln!("device: rank {r}: {d}");
            }
        }
    }
    opened
}

/// An error's text without its kind prefix (device errors are re-raised as one config error).
fn message(e: &Error) -> String {
    match e {
        Error::Cuda(m) | Error::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The files a finished or running run leaves in its directory.
const RUN_OUTPUTS: &[&str] = &["steps.csv", "eval.csv", "summary.json", "comparison.json", "accuracy_vs_time.png", "accuracy_vs_time.svg"];

/// Takes an exclusive lock on `dir` (`dir/.lock`, released when the returned file closes, also when
/// the process dies); a second run on the same directory gets a one-line error.
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File> {
    use std::os::unix::io::AsRawFd;
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(Error::Config(format!("--out {}: another run is using this directory", dir.display())));
    }
    Ok(f)
}

/// Refuses a directory that holds a run's outputs unless `overwrite`, in which case those
/// outputs are removed first (and nothing else), so no stale file survives beside the new run.
fn claim_dir(dir: &std::path::Path, overwrite: bool, outputs: &[&str]) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock = lock_dir(dir)?;
    let present: Vec<&str> = outputs.iter().copied().filter(|f| dir.join(f).exists()).collect();
    if !present.is_empty() {
        if !overwrite {
            return Err(Error::Config(format!(
                "--out {} already holds a run ({}); pass --overwrite to replace it or choose another --out",
                dir.display(),
                present.join(", ")
            )));
        }
        for f in present {
            let p = dir.join(f);
            if p.is_dir() {
                std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            } else {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
    }
    Ok(lock)
}

fn prepare_out(out: &std::path::Path, cfg: &RunConfig) -> Result<Option<std::fs::File>> {
    let lock = claim_dir(out, cfg.overwrite, RUN_OUTPUTS)?;
    let mut v = serde_json::to_value(cfg).map_err(|e| Error::Other(e.to_string()))?;
    v["command"] = serde_json::Value::String(std::env::args().collect::<Vec<_>>().join(" "));
    scadles::metrics::write_json(&out.join("config.json"), &v)?;
    Ok(Some(lock))
}

fn print_summary(s: &scadles::train::Summary) {
    println!(
        "{} {} | {} ranks | {} steps ({:.2} epochs) | top1 {:.4} top5 {:.4} loss {:.4} | {:.1} img/s | {} clock {:.1}s{} | max buffer {} samples | out {}",
        s.policy,
        s.model,
        s.ranks,
        s.steps,
        s.epochs,
        s.final_top1,
        s.final_top5,
        s.final_loss,
        s.images_per_s,
        s.clock,
        s.clock_s,
        match s.time_to_target_s {
            Some(t) => format!(" | target reached at {t:.1}s"),
            None => String::new(),
        },
        s.max_buffer_samples,
        s.out_dir
    );
}

/// The main job: ScaDLES and DDL on the same streams; time-to-target of both and the speedup.
fn compare(world: &World, args: &TrainArgs) -> Result<()> {
    let base = args.resolve()?;
    base.validate(world.size())?;
    // The DDL side's settings are checked before the ScaDLES side trains.
    base.ddl_baseline().validate(world.size()).map_err(|e| Error::Config(format!("compare's DDL side: {}", message(&e))))?;
    let root = base.out.clone().unwrap_or_else(scadles::metrics::default_run_dir);
    // The comparison's own outputs and its two runs, checked (and with --overwrite cleared) before
    // either side trains.
    let claimed = if world.is_root() {
        claim_dir(&root, base.overwrite, &["comparison.json", "accuracy_vs_time.png", "accuracy_vs_time.svg", "scadles", "ddl"]).map(Some)
    } else {
        Ok(None)
    };
    if world.any(claimed.is_err()) {
        return Err(claimed.err().unwrap_or_else(|| Error::Config("rank 0 could not prepare the run directory".into())));
    }
    let _lock = claimed?;
    let compute = open_device(world, &base)?;
    let mut runs = Vec::new();
    for policy in [Policy::Scadles, Policy::Ddl] {
        // The DDL side is the paper's baseline (fixed batch, persistence, dense, no injection).
        let cfg = match policy {
            Policy::Scadles => RunConfig {
                policy,
                ..base.clone()
            },
            Policy::Ddl => base.ddl_baseline(),
        };
        let dir = root.join(policy.to_string());
        if world.is_root() {
            eprintln!("== {policy} ==");
        }
        runs.push(run_one(world, &cfg, &compute, Some(dir), policy == Policy::Ddl)?);
    }
    if world.is_root() {
        scadles::train::compare::report(&root, &base, &base.ddl_baseline(), &runs[0], &runs[1])?;
    }
    Ok(())
}

fn models(a: &ModelsArgs) -> Result<()> {
    println!("{:<10} {:>18} {:>14}", "model", format!("torchvision/{}", a.num_classes), format!("cifar/{}", a.cifar_classes));
    for name in scadles::models::MODEL_NAMES {
        let tv = scadles::models::param_count(name, scadles::models::Shape::Torchvision, a.num_classes)?;
        let cf = scadles::models::param_count(name, scadles::models::Shape::Cifar, a.cifar_classes)?;
        println!("{name:<10} {tv:>18} {cf:>14}");
    }
    Ok(())
}
