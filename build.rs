//! Makes the binary find libtorch at run time without any environment: adds RUNPATH entries for
//! `<torch>/lib` and every `<site-packages>/nvidia/*/lib` of the libtorch that torch-sys linked
//! against, and links `torch_cuda` with `--no-as-needed` so CUDA registers when a driver exists
//! (the linker would otherwise drop it, since nothing references it directly). RUNPATH rather than
//! RPATH, so `LD_LIBRARY_PATH` can still point the binary at another torch 2.11 install.
//! It also compiles `csrc/torch_ext.cpp` (libtorch entry points tch does not expose) against the
//! same libtorch's headers, with its CUDA-graph part when that libtorch has CUDA and the CUDA
//! runtime wheel's headers sit beside it.
use std::path::{Path, PathBuf};

fn libtorch_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LIBTORCH") {
        return Some(PathBuf::from(dir));
    }
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
        let out = std::process::Command::new(python)
            .args(["-c", "import torch, os; print(os.path.dirname(torch.__file__))"])
            .output()
            .ok()?;
        return Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    None
}

fn main() {
    record_git_revision();
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
    println!("cargo:rerun-if-changed=csrc/torch_ext.cpp");
    println!("cargo:rerun-if-changed=csrc/dist.cpp");
    println!("cargo:rerun-if-changed=csrc/guarded.h");
    let Some(torch) = libtorch_dir() else {
        panic!("set LIBTORCH to a torch 2.11 installation (`export LIBTORCH=$(bash scripts/setup-libtorch.sh)`)");
    };
    let lib = torch.join("lib");
    let cuda_include = torch.parent().map(|site| site.join("nvidia")).and_then(|n| cuda_include_dir(&n)).filter(|_| lib.join("libtorch_cuda.so").exists());
    compile_ext(&torch, cuda_include.as_deref());
    if cuda_include.is_some() {
        println!("cargo:rustc-link-lib=dylib=c10_cuda");
    }
    if let Ok(v) = std::fs::read_to_string(torch.join("version.py")) {
        if let Some(line) = v.lines().find(|l| l.starts_with("__version__")) {
            let ver = line.split('\'').nth(1).unwrap_or("unknown");
            println!("cargo:rustc-env=FINETUNE_LIBTORCH_VERSION={ver}");
        }
    }
    let mut dirs = vec![lib.clone()];
    // torch/ sits in site-packages/, beside nvidia/<pkg>/lib of the CUDA runtime wheels.
    if let Some(site) = torch.parent() {
        dirs.extend(nvidia_lib_dirs(&site.join("nvidia")));
    }
    println!("cargo:rustc-link-search=native={}", lib.display());
    for d in &dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
        println!("cargo:rustc-link-arg=-Wl,-rpath-link,{}", d.display());
    }
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
}

fn compile_ext(torch: &Path, cuda_include: Option<&Path>) {
    let include = torch.join("include");
    let mut build = cc::Build::new();
    if let Some(dir) = cuda_include {
        build.include(dir).define("FT_WITH_CUDA", None);
    }
    build
        .cpp(true)
        .file("csrc/torch_ext.cpp")
        .file("csrc/dist.cpp")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag("-D_GLIBCXX_USE_CXX11_ABI=1")
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .compile("finetune_torch_ext");
}

/// The CUDA runtime wheel's header folder (`nvidia/cu13/include` for torch 2.11), if it holds
/// the `crt/` headers too (nvidia-cuda-crt, which scripts/setup-libtorch.sh installs).
fn cuda_include_dir(nvidia: &Path) -> Option<PathBuf> {
    let dir = nvidia_packages(nvidia).into_iter().map(|p| p.join("include")).find(|d| d.join("cuda_runtime.h").is_file())?;
    if !dir.join("crt/host_config.h").is_file() {
        println!("cargo:warning={} has no crt/ headers (pip install nvidia-cuda-crt): building without CUDA graphs", dir.display());
        return None;
    }
    Some(dir)
}

fn nvidia_lib_dirs(nvidia: &Path) -> Vec<PathBuf> {
    nvidia_packages(nvidia).into_iter().map(|p| p.join("lib")).filter(|d| d.is_dir()).collect()
}

/// The `nvidia/<pkg>` folders of the CUDA runtime wheels, sorted (none if there is no such folder).
fn nvidia_packages(nvidia: &Path) -> Vec<PathBuf> {
    let mut pkgs: Vec<PathBuf> = std::fs::read_dir(nvidia).into_iter().flatten().flatten().map(|e| e.path()).collect();
    pkgs.sort();
    pkgs
}

/// Bakes the git revision (with a `-dirty` mark) into the binary for run records.
fn record_git_revision() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let rev = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    println!("cargo:rustc-env=FINETUNE_GIT_REVISION={rev}{}", if dirty { "-dirty" } else { "" });
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/index");
    }
}
