//! The deployment files in deploy/: the systemd units pass `systemd-analyze verify`
//! (with this build's binary in place of /usr/local/bin/lookout) and keep their
//! hardening; the Kubernetes manifests parse, and each container's command line, probes
//! and secrets fit what `lookout` accepts and serves.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

const INSTALLED: &str = "/usr/local/bin/lookout";

fn deploy(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(dir)
}

fn files_in(dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy(dir))
        .unwrap_or_else(|e| panic!("deploy/{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .{extension} file in deploy/{dir}");
    files
}

/// Whether `lookout ARGS --help` parses: every flag of `args` exists, with a value
/// where it takes one.
fn lookout_accepts(args: &[String]) -> Result<(), String> {
    let output = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run lookout");
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A unit's `Key=value` lines, in order.
fn directives(unit: &str) -> Vec<(&str, &str)> {
    unit.lines()
        .filter(|line| !line.starts_with('#') && !line.starts_with('['))
        .filter_map(|line| line.split_once('='))
        .collect()
}

#[test]
fn the_systemd_units_verify_and_stay_hardened() {
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing: `make test-deps` installs it (Debian's systemd)");
    };
    assert!(found.status.success());
    let dir = tempfile::tempdir().unwrap();
    for path in files_in("systemd", "service") {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap();
        assert!(text.contains(INSTALLED), "{name:?} runs {INSTALLED}");
        let here = dir.path().join(name);
        std::fs::write(
            &here,
            text.replace(INSTALLED, env!("CARGO_BIN_EXE_lookout")),
        )
        .unwrap();
        let verified = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&here)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&verified.stderr);
        // A directive systemd does not understand is only a warning: none is allowed.
        assert!(
            verified.status.success() && said.trim().is_empty(),
            "{name:?}: {said}"
        );

        let set = directives(&text);
        for hardening in [
            ("DynamicUser", "yes"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("CapabilityBoundingSet", ""),
            ("PrivateDevices", "yes"),
            ("SystemCallFilter", "@system-service"),
            ("KillSignal", "SIGTERM"),
        ] {
            assert!(set.contains(&hardening), "{name:?} lacks {hardening:?}");
        }
        let exec = set
            .iter()
            .find(|(key, _)| *key == "ExecStart")
            .map(|(_, value)| *value)
            .unwrap_or_else(|| panic!("{name:?}: no ExecStart"));
        let args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
        lookout_accepts(&args).unwrap_or_else(|e| panic!("{name:?}: ExecStart: {e}"));
        // The token comes as a credential file, never on the command line.
        assert!(!args.iter().any(|a| a == "--token"), "{name:?}");
    }
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The port a container's `lookout` listens on for `flag` (`--listen 0.0.0.0:8080`).
fn listening_port(args: &[String], flag: &str) -> Option<u64> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1)?.rsplit_once(':')?.1.parse().ok()
}

#[test]
fn the_kubernetes_manifests_fit_what_lookout_serves() {
    for path in files_in("kubernetes", "yaml") {
        let docs = documents(&path);
        let secrets: Vec<&str> = docs
            .iter()
            .filter(|d| d["kind"] == "Secret")
            .filter_map(|d| d["metadata"]["name"].as_str())
            .collect();
        let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
        let commands: Vec<String> = deployments
            .iter()
            .map(|d| strings(&d["spec"]["template"]["spec"]["containers"][0]["args"])[0].clone())
            .collect();
        assert_eq!(commands, ["serve", "worker"], "{}", path.display());
        for deployment in deployments {
            check_deployment(deployment, &secrets);
        }
    }
}

fn check_deployment(deployment: &Value, secrets: &[&str]) {
    let name = deployment["metadata"]["name"].as_str().unwrap_or("?");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        &deployment["spec"]["selector"]["matchLabels"], labels,
        "{name}"
    );
    let container = &pod["containers"][0];
    let args = strings(&container["args"]);
    lookout_accepts(&args).unwrap_or_else(|e| panic!("{name}: args: {e}"));
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );

    // Every probe asks /healthz on the port lookout listens on.
    let port = listening_port(&args, "--listen").or(listening_port(&args, "--metrics-listen"));
    let probes: Vec<&Value> = ["livenessProbe", "readinessProbe"]
        .iter()
        .map(|probe| &container[*probe])
        .filter(|probe| !probe.is_null())
        .collect();
    assert!(!probes.is_empty(), "{name}: no probe");
    for probe in probes {
        assert_eq!(probe["httpGet"]["path"], "/healthz", "{name}");
        assert_eq!(probe["httpGet"]["port"].as_u64(), port, "{name}");
    }

    // Secrets come from the manifests' Secret: a mounted token file, the password by env.
    for env in container["env"].as_array().into_iter().flatten() {
        let secret = &env["valueFrom"]["secretKeyRef"]["name"];
        assert!(secrets.iter().any(|s| secret == s), "{name}: {env}");
    }
    if let Some(at) = args.iter().position(|a| a == "--token-file") {
        let file = &args[at + 1];
        let mounted = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| {
                m["mountPath"]
                    .as_str()
                    .is_some_and(|dir| file.starts_with(&format!("{dir}/")))
            });
        let mounted = mounted.unwrap_or_else(|| panic!("{name}: {file} is not mounted"));
        let volume = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == mounted["name"])
            .unwrap_or_else(|| panic!("{name}: no volume {}", mounted["name"]));
        let secret = &volume["secret"]["secretName"];
        assert!(secrets.iter().any(|s| secret == s), "{name}: {volume}");
    }
}
