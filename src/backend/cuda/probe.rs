//! GPU discovery and the `--device auto|cpu|cuda` choice. Never panics: cudarc panics when libcuda
//! is missing, so the probe checks for the library first and catches what slips through.
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where a rank computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    Cpu,
    /// CUDA device ordinal.
    Cuda(usize),
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// The `--device` flag: `auto` takes a GPU when one is usable and the CPU otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// Runs `f`, turning a panic into `Err(message)` without printing it (the default hook would
/// write the panic to stderr even though it is handled here).
pub(crate) fn quiet_catch<R>(f: impl FnOnce() -> R) -> std::result::Result<R, String> {
    use std::sync::Mutex;
    // The panic hook is process-global: serialise the swap so concurrent probes do not restore
    // each other's silenced hook.
    static HOOK: Mutex<()> = Mutex::new(());
    let _guard = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(prev);
    r.map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic without a message".into())
    })
}

/// Number of usable NVIDIA GPUs, or why there is none (no libcuda, no device, driver error).
pub fn probe() -> std::result::Result<usize, String> {
    // SAFETY: a dlopen probe of libcuda by name; it has no other effect and does not panic.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("libcuda not found".into());
    }
    match quiet_catch(cudarc::driver::CudaContext::device_count)? {
        Ok(0) => Err("the driver reports no CUDA device".into()),
        Ok(n) => Ok(n as usize),
        Err(e) => Err(format!("cuInit/cuDeviceGetCount failed: {e:?}")),
    }
}

/// One line per visible GPU: ordinal, name, compute capability, multiprocessors and memory (for
/// `scadles devices`). Empty when there is none; a query that fails shows as its error.
pub fn describe_gpus() -> Vec<String> {
    use cudarc::driver::{result::device, sys::CUdevice_attribute as A};
    let Ok(n) = probe() else { return Vec::new() };
    (0..n)
        .map(|i| {
            let line = quiet_catch(|| -> std::result::Result<String, cudarc::driver::DriverError> {
                let d = device::get(i as i32)?;
                // SAFETY: `d` is a device handle the driver just returned; these are read-only queries.
                let (major, minor, sms, mem) = unsafe {
                    (
                        device::get_attribute(d, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
                        device::get_attribute(d, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
                        device::get_attribute(d, A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
                        device::total_mem(d)?,
                    )
                };
                Ok(format!("{}, sm_{major}{minor}, {sms} SMs, {:.1} GiB", device::get_name(d)?, mem as f64 / (1u64 << 30) as f64))
            });
            match line {
                Ok(Ok(l)) => format!("cuda:{i} {l}"),
                Ok(Err(e)) => format!("cuda:{i} (query failed: {e:?})"),
                Err(e) => format!("cuda:{i} (query failed: {e})"),
            }
        })
        .collect()
}

/// Resolves `--device` for the rank with node-local index `local_rank`: rank r takes GPU
/// r mod (GPU count), so ranks share GPUs round-robin when there are more ranks than GPUs.
pub fn select(choice: DeviceChoice, local_rank: usize) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(match probe() {
            Ok(n) => Device::Cuda(local_rank % n),
            Err(_) => Device::Cpu,
        }),
        DeviceChoice::Cuda => match probe() {
            Ok(n) => Ok(Device::Cuda(local_rank % n)),
            Err(why) if why == "libcuda not found" => {
                Err(Error::Cuda("--device cuda: no usable NVIDIA GPU (libcuda not found)".into()))
            }
            Err(why) => Err(Error::Cuda(format!("--device cuda: no usable NVIDIA GPU ({why})"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_choice_never_probes() {
        assert_eq!(select(DeviceChoice::Cpu, 3).unwrap(), Device::Cpu);
    }

    #[test]
    fn auto_and_cuda_agree_with_the_probe() {
        match probe() {
            Ok(n) => {
                assert!(n > 0);
                assert_eq!(select(DeviceChoice::Auto, n + 1).unwrap(), Device::Cuda(1 % n));
                assert_eq!(select(DeviceChoice::Cuda, 2 * n).unwrap(), Device::Cuda(0));
            }
            Err(why) => {
                eprintln!("no GPU here ({why}): checking the CPU fallback and the --device cuda error");
                assert_eq!(select(DeviceChoice::Auto, 0).unwrap(), Device::Cpu);
                let e = select(DeviceChoice::Cuda, 0).unwrap_err().to_string();
                assert!(e.contains("--device cuda: no usable NVIDIA GPU"), "{e}");
            }
        }
    }

    #[test]
    fn quiet_catch_turns_panics_into_errors() {
        assert_eq!(quiet_catch(|| 7).unwrap(), 7);
        let e = quiet_catch(|| -> u8 { panic!("boom {}", 1) }).unwrap_err();
        assert_eq!(e, "boom 1");
    }

    #[test]
    fn device_choice_parses_from_the_command_line() {
        use clap::ValueEnum;
        assert_eq!(DeviceChoice::from_str("cuda", true).unwrap(), DeviceChoice::Cuda);
        assert_eq!(DeviceChoice::from_str("auto", true).unwrap(), DeviceChoice::Auto);
        assert!(DeviceChoice::from_str("gpu", true).is_err());
    }
}
