//! The Python and TypeScript SDKs' own suites (`sdk/python/tests` with pytest, `sdk/typescript/test`
//! with node's test runner), run against this build of the server. The Python SDK is first built
//! into a wheel and installed from it, as a user would get it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(command: &mut Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_python_sdk_suite_passes_against_this_server() {
    let work = tempfile::tempdir().unwrap();
    // Build the wheel from a copy, so the source tree gets no build files.
    let source = work.path().join("source");
    run(
        Command::new("cp")
            .arg("-r")
            .arg(repo().join("sdk/python"))
            .arg(&source),
        "copy the SDK",
    );
    let dist = work.path().join("dist");
    run(
        Command::new("python3")
            .args([
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
            ])
            .arg(&dist)
            .arg(&source),
        "build the wheel",
    );
    let wheel = std::fs::read_dir(&dist)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .expect("a wheel");
    let site = work.path().join("site");
    run(
        Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--no-deps", "--target"])
            .arg(&site)
            .arg(&wheel)
            .env("PIP_ROOT_USER_ACTION", "ignore"),
        "install the wheel",
    );
    run(
        Command::new("python3")
            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
            .arg(source.join("tests"))
            .env("PYTHONPATH", &site)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("CRABMAIL_BIN", env!("CARGO_BIN_EXE_crabmail"))
            .env_remove("CRABMAIL_TOKEN")
            .env_remove("CRABMAIL_URL"),
        "pytest",
    );
}

#[test]
fn the_typescript_sdk_suite_passes_against_this_server() {
    let work = tempfile::tempdir().unwrap();
    // The package as npm would ship it (`npm pack`), with the suite beside it: the suite imports
    // `crabmail`, which resolves to the packed files.
    run(
        Command::new("npm")
            .args(["pack", "--silent", "--pack-destination"])
            .arg(work.path())
            .current_dir(repo().join("sdk/typescript")),
        "npm pack",
    );
    let tarball = std::fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".tgz"))
        .expect("a package tarball");
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(work.path()),
        "unpack",
    );
    let package = work.path().join("package");
    run(
        Command::new("cp")
            .arg("-r")
            .arg(repo().join("sdk/typescript/test"))
            .arg(package.join("test")),
        "copy the suite",
    );
    // The declarations type-check what the README's example does (TypeScript from the testkit's
    // pinned packages; the package itself depends on nothing).
    let testkit = repo().join("crates/crabmail-testkit/node");
    std::os::unix::fs::symlink(testkit.join("node_modules"), package.join("node_modules"))
        .expect("link the testkit's packages");
    run(
        Command::new(testkit.join("node_modules/.bin/tsc"))
            .args([
                "--noEmit",
                "--strict",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
                "--target",
                "es2022",
                "--types",
                "node",
                "test/types.ts",
            ])
            .current_dir(&package),
        "tsc",
    );
    run(
        Command::new("node")
            .args(["--test", "test/"])
            .current_dir(&package)
            .env("CRABMAIL_BIN", env!("CARGO_BIN_EXE_crabmail"))
            .env_remove("CRABMAIL_TOKEN")
            .env_remove("CRABMAIL_URL"),
        "node --test",
    );
}
