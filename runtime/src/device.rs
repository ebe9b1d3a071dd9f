//! Backends and devices: burn's Flex CPU backend always, CUDA with the `cuda` feature.
//!
//! burn 0.21 panics when a CUDA device is created without a driver, so [`cuda_devices`] first
//! loads `libcuda.so.1` itself, calls `cuInit` and counts the devices, and [`Device::check`]
//! turns a missing driver or GPU into a [`RuntimeError::Device`].

use std::fmt;
use std::str::FromStr;

use crate::error::RuntimeError;

/// burn's pure-Rust CPU backend (SIMD kernels, rayon threads).
pub type Cpu = burn::backend::Flex;

/// burn's CUDA backend.
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// A device to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The CPU (burn's Flex backend).
    Cpu,
    /// CUDA GPU with this index (needs the `cuda` feature and an NVIDIA driver).
    Cuda(usize),
}

impl FromStr for Device {
    type Err = RuntimeError;

    /// `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse) {
                Some(Ok(i)) => Ok(Device::Cuda(i)),
                _ => Err(RuntimeError::Device(format!(
                    "unknown device `{s}`: use cpu, cuda or cuda:N"
                ))),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Device {
    /// Fails with a clear message when the device cannot be used in this build or machine.
    pub fn check(&self) -> Result<(), RuntimeError> {
        match *self {
            Device::Cpu => Ok(()),
            Device::Cuda(i) => {
                if !cfg!(feature = "cuda") {
                    return Err(RuntimeError::Device(
                        "this build has no CUDA support: rebuild with `--features cuda`".into(),
                    ));
                }
                let n = cuda_devices()?;
                if i >= n {
                    return Err(RuntimeError::Device(format!(
                        "cuda:{i} requested but the driver reports {n} device(s)"
                    )));
                }
                Ok(())
            }
        }
    }

    /// A short description of the hardware, for reports.
    pub fn describe(&self) -> String {
        match self {
            Device::Cpu => format!(
                "CPU {} ({} cores)",
                cpu_model().unwrap_or_else(|| "of unknown model".into()),
                std::thread::available_parallelism().map_or(1, |n| n.get())
            ),
            Device::Cuda(i) => format!("CUDA device {i}"),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
}

/// Number of CUDA devices the driver reports; an error when there is no usable driver.
#[cfg(unix)]
pub fn cuda_devices() -> Result<usize, RuntimeError> {
    use std::ffi::CStr;
    const LIB: &CStr = c"libcuda.so.1";
    // SAFETY: dlopen/dlsym/dlclose are called with valid NUL-terminated strings; the symbols are
    // called with the signatures of the CUDA driver API (`CUresult cuInit(unsigned int)`,
    // `CUresult cuDeviceGetCount(int*)`), and the library stays loaded while they are used.
    unsafe {
        let handle = libc::dlopen(LIB.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            return Err(RuntimeError::Device(
                "no CUDA driver: libcuda.so.1 cannot be loaded (is the NVIDIA driver installed?)"
                    .into(),
            ));
        }
        let init = libc::dlsym(handle, c"cuInit".as_ptr());
        let count = libc::dlsym(handle, c"cuDeviceGetCount".as_ptr());
        let result = if init.is_null() || count.is_null() {
            Err(RuntimeError::Device(
                "libcuda.so.1 lacks cuInit/cuDeviceGetCount".into(),
            ))
        } else {
            type CuInit = extern "C" fn(u32) -> i32;
            type CuDeviceGetCount = extern "C" fn(*mut i32) -> i32;
            let init = std::mem::transmute::<*mut libc::c_void, CuInit>(init);
            let count = std::mem::transmute::<*mut libc::c_void, CuDeviceGetCount>(count);
            let code = init(0);
            if code != 0 {
                Err(RuntimeError::Device(format!(
                    "the CUDA driver failed to initialise (cuInit error {code}; no GPU visible?)"
                )))
            } else {
                let mut n = 0i32;
                let code = count(&mut n);
                if code != 0 {
                    Err(RuntimeError::Device(format!(
                        "cuDeviceGetCount failed with error {code}"
                    )))
                } else {
                    Ok(n.max(0) as usize)
                }
            }
        };
        libc::dlclose(handle);
        result
    }
}

/// Number of CUDA devices: not detectable on this platform.
#[cfg(not(unix))]
pub fn cuda_devices() -> Result<usize, RuntimeError> {
    Err(RuntimeError::Device(
        "CUDA detection is only implemented on Unix".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert!("gpu".parse::<Device>().is_err());
        assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn cuda_check_never_panics() {
        // Without a driver (or without the feature) this is an error, never a panic; with one,
        // cuda:4096 is out of range.
        assert!(Device::Cuda(4096).check().is_err());
        assert!(Device::Cpu.check().is_ok());
    }
}
