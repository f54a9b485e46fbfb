//! The official Python `kubernetes` client against a real `rudder server`: runs the pytest suite
//! in `crates/rudder/tests/python` (discovery, typed and dynamic CRUD, patch types, scale,
//! Status errors, paging, watches and bookmarks, Table and metadata-only output).
//!
//! The client and pytest live in a virtualenv under the cargo target dir, named after a hash of
//! `requirements.txt` and the Python version, built once and reused by later runs. Needs
//! `python3` (with the `venv` module) on PATH and, for the first run, PyPI. Set
//! `RUDDER_SKIP_PYTHON=1` to skip the suite.

use crate::common::TestServer;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The Python suite's folder.
const SUITE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");

/// Upper bound for one run of the suite (it takes well under a minute).
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// 64-bit FNV-1a: a stable hash (unlike `DefaultHasher`, the same on every toolchain).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The cargo target dir (`CARGO_TARGET_TMPDIR` is its `tmp` folder).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// Runs a setup command to completion; when it cannot start or fails, removes the half-built
/// `scratch` folder and panics with `hint`.
fn run_setup(cmd: &mut Command, what: &str, hint: &str, scratch: &Path) {
    let out = cmd.stdin(Stdio::null()).output();
    let failure = match &out {
        Err(e) => format!("{what} could not be started ({e})."),
        Ok(out) if !out.status.success() => format!(
            "{what} failed ({}).\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Ok(_) => return,
    };
    let _ = std::fs::remove_dir_all(scratch);
    panic!("{failure}\n{hint}");
}

/// The virtualenv with the suite's requirements: reused when a finished one exists, else built
/// in a private folder and moved into place, so concurrent runs never see a half-built one.
fn venv() -> PathBuf {
    let requirements = Path::new(SUITE).join("requirements.txt");
    let reqs = std::fs::read(&requirements).expect("tests/python/requirements.txt is readable");
    let version = Command::new("python3").arg("--version").stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!(
            "the Python client tests need python3 on PATH ({e}); install Python 3.9+ with the venv \
             module (Debian: apt-get install python3 python3-venv), or set RUDDER_SKIP_PYTHON=1 to skip them"
        )
    });
    assert!(version.status.success(), "`python3 --version` failed: {}", String::from_utf8_lossy(&version.stderr));
    let mut key = reqs.clone();
    key.extend_from_slice(&version.stdout);
    key.extend_from_slice(&version.stderr);
    let dir = target_dir().join(format!("python-venv-{:016x}", fnv1a(&key)));
    let ready = |d: &Path| d.join(".rudder-ready").exists();
    if ready(&dir) {
        return dir;
    }

    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let partial = target_dir().join(format!(
        "{}.partial-{}-{nanos}",
        dir.file_name().and_then(|n| n.to_str()).expect("venv folder name"),
        std::process::id()
    ));
    eprintln!("python: building a virtualenv for the client tests in {} (once)", dir.display());
    run_setup(
        Command::new("python3").args(["-m", "venv"]).arg(&partial),
        "`python3 -m venv`",
        "Install Python's venv module (Debian: apt-get install python3-venv), or set RUDDER_SKIP_PYTHON=1.",
        &partial,
    );
    run_setup(
        Command::new(partial.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "`pip install -r crates/rudder/tests/python/requirements.txt`",
        "The suite needs the packages pinned there (the `kubernetes` Python client and pytest) from PyPI: \
         make PyPI reachable (or configure pip with an index that has them) and run again, or set \
         RUDDER_SKIP_PYTHON=1 to skip the Python client tests.",
        &partial,
    );
    std::fs::write(partial.join(".rudder-ready"), b"").expect("mark the virtualenv finished");
    if let Err(e) = std::fs::rename(&partial, &dir) {
        // Another run finished the same virtualenv first: use that one.
        let _ = std::fs::remove_dir_all(&partial);
        assert!(ready(&dir), "could not move the virtualenv into {} ({e})", dir.display());
    }
    dir
}

/// Runs pytest from the virtualenv in the suite's folder against `server`, with `extra`
/// arguments and environment; panics when it fails.
pub(crate) async fn run_pytest(server: &TestServer, extra: &[&str], env: &[(&str, &str)]) {
    let venv = venv();
    let mut cmd = tokio::process::Command::new(venv.join("bin/python"));
    cmd.args(["-m", "pytest", "-v", "--tb=short", "--color=no"])
        .arg(format!("--basetemp={}", server.data_dir().join("pytest").display()))
        .args(extra)
        // pytest.ini there: every test_*.py of the folder, no cache folder in the source tree.
        .current_dir(SUITE)
        .env("KUBECONFIG", &server.kubeconfig)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("pytest starts from the virtualenv");
    let status = tokio::time::timeout(SUITE_TIMEOUT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("the Python client suite did not finish within {SUITE_TIMEOUT:?}"))
        .expect("wait for pytest");
    assert!(status.success(), "the Python client suite failed ({status}); pytest's report is above");
}

/// Whether the Python suites are switched off.
pub(crate) fn python_skipped() -> bool {
    std::env::var("RUDDER_SKIP_PYTHON").is_ok_and(|v| v == "1")
}

#[tokio::test]
async fn python_client_suite() {
    if python_skipped() {
        eprintln!("python: RUDDER_SKIP_PYTHON=1, skipping the Python client suite");
        return;
    }
    let server = TestServer::start().await;
    run_pytest(&server, &[], &[]).await;
}
