//! The plugin host against the real example plugins (built from C by scripts/build-plugins.sh,
//! which `make` runs first) in real wasmtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use warden_plugins::{Host, HostConfig, Input, Limits, Phase, Plugin, PluginError, Role, Verdict};

fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/build").join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; build the example plugins first: scripts/build-plugins.sh (make does it)", path.display())
    })
}

fn host() -> Arc<Host> {
    Arc::new(Host::new(HostConfig { cache_dir: None }))
}

fn load(name: &str) -> Arc<Plugin> {
    host().load(name, &wasm(name)).expect("loads")
}

fn input(text: &str, config: &str) -> Input {
    Input {
        phase: Phase::Completion,
        role: Role::Assistant,
        text: text.into(),
        model: "gpt-4o".into(),
        tenant: "t".into(),
        config: config.into(),
    }
}

#[test]
fn link_guard_redacts_exactly_the_links_to_hosts_not_allowed() {
    let p = load("link-guard");
    let text = "Docs: https://docs.python.org/3/ and https://evil.test/login, café https://EVIL.test/x.";
    let v = p.evaluate(&input(text, r#"{"allowed_hosts": ["docs.python.org"]}"#), &Limits::default()).unwrap();
    let Verdict::Redact(spans) = v else { panic!("expected redact, got {v:?}") };
    let got: Vec<&str> = spans.iter().map(|s| &text[s.clone()]).collect();
    assert_eq!(got, ["https://evil.test/login", "https://EVIL.test/x"]);
    let clean = p.evaluate(
        &input("See https://docs.python.org/3/.", r#"{"allowed_hosts": ["docs.python.org"]}"#),
        &Limits::default(),
    );
    assert_eq!(clean.unwrap(), Verdict::Allow);
}

#[test]
fn brand_steering_flags_a_recommendation_of_a_competitor() {
    let p = load("brand-steering");
    let cfg = r#"{"competitors": ["Acme Cloud"], "action": "block"}"#;
    let v = p.evaluate(&input("Honestly, I would recommend Acme Cloud instead.", cfg), &Limits::default()).unwrap();
    assert_eq!(v, Verdict::Block("recommends competitor Acme Cloud".into()));
    let v = p.evaluate(&input("Our storage keeps three copies of your data.", cfg), &Limits::default()).unwrap();
    assert_eq!(v, Verdict::Allow);
}

fn fault(p: &Plugin, fault: &str, limits: &Limits) -> String {
    match p.evaluate(&input("héllo!", &format!(r#"{{"fault": "{fault}"}}"#)), limits) {
        Err(PluginError::Call(m)) => m,
        other => panic!("fault {fault}: expected an error, got {other:?}"),
    }
}

#[test]
fn traps_timeouts_memory_caps_and_bad_answers_are_errors_that_say_which() {
    let p = load("faulty");
    // A generous time limit, so that only the loop can reach it however busy the machine is.
    let limits = Limits { memory_bytes: 8 << 20, timeout: Duration::from_secs(5) };
    assert!(fault(&p, "trap", &limits).contains("trapped"), "{}", fault(&p, "trap", &limits));
    let short = Limits { timeout: Duration::from_millis(20), ..limits };
    assert_eq!(fault(&p, "loop", &short), "plugin `faulty` exceeded its time limit of 20 ms");
    assert_eq!(fault(&p, "oom", &limits), "plugin `faulty` exceeded its memory cap of 8 MiB");
    for f in ["bad-span", "bad-span-reversed", "bad-span-mid-char"] {
        let m = fault(&p, f, &limits);
        assert!(m.contains("answered redact with span"), "{f}: {m}");
    }
    assert!(fault(&p, "bad-utf8-reason", &limits).contains("faulty"));
    assert!(fault(&p, "many-spans", &limits).contains("20000 spans; at most 10000"));
    // A reason is cut short before it reaches records and logs.
    match p.evaluate(&input("hi", r#"{"fault": "long-reason"}"#), &limits).unwrap() {
        Verdict::Flag(r) => assert_eq!(r, format!("{}…", "x".repeat(256))),
        other => panic!("{other:?}"),
    }
    // Every call gets a fresh instance: the plugin still answers after all of that.
    assert_eq!(p.evaluate(&input("fine", r#"{"fault": "none"}"#), &limits).unwrap(), Verdict::Allow);
}

#[test]
fn what_is_not_a_plugin_is_refused_with_a_reason() {
    let h = host();
    let err = h.load("junk", b"not wasm at all").unwrap_err().to_string();
    assert!(err.contains("`junk` is not a valid WebAssembly component"), "{err}");
    // A core module (here: the header of one) is named as such.
    let err = h.load("core", b"\0asm\x01\0\0\0").unwrap_err().to_string();
    assert!(err.contains("core WebAssembly module, not a component"), "{err}");
}

#[test]
fn compiled_plugins_are_cached_on_disk_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = wasm("link-guard");
    let first = Arc::new(Host::new(HostConfig { cache_dir: Some(dir.path().to_path_buf()) }));
    first.load("link-guard", &bytes).unwrap();
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().ends_with(".cwasm"));
    // A second host (a restart) loads the artefact and it works.
    let second = Arc::new(Host::new(HostConfig { cache_dir: Some(dir.path().to_path_buf()) }));
    let p = second.load("link-guard", &bytes).unwrap();
    let v = p.evaluate(&input("go to http://bad.example/", r#"{"allowed_hosts": []}"#), &Limits::default());
    let one: std::ops::Range<usize> = 6..25;
    assert_eq!(v.unwrap(), Verdict::Redact([one].to_vec()));
    // A corrupt artefact is not trusted: it is compiled again.
    let path = dir.path().join(&files[0]);
    std::fs::write(&path, b"garbage").unwrap();
    let third = Arc::new(Host::new(HostConfig { cache_dir: Some(dir.path().to_path_buf()) }));
    assert!(third.load("link-guard", &bytes).is_ok());
}

/// A precompiled plugin is native code outside the sandbox: a cache directory that other users
/// can write is neither read nor written.
#[cfg(unix)]
#[test]
fn a_cache_directory_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let bytes = wasm("link-guard");
    let h = Arc::new(Host::new(HostConfig { cache_dir: Some(dir.path().to_path_buf()) }));
    h.load("link-guard", &bytes).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing is cached in a shared directory");
    // Another plugin's compiled code planted there under link-guard's name is ignored: link-guard
    // is compiled from its own bytes and redacts (the planted `faulty` would allow).
    let private = tempfile::tempdir().unwrap();
    Arc::new(Host::new(HostConfig { cache_dir: Some(private.path().to_path_buf()) }))
        .load("faulty", &wasm("faulty"))
        .unwrap();
    let planted = std::fs::read_dir(private.path()).unwrap().next().unwrap().unwrap().path();
    use sha2::Digest;
    let name = format!("{}.cwasm", hex::encode(sha2::Sha256::digest(&bytes)));
    std::fs::copy(&planted, dir.path().join(&name)).unwrap();
    std::fs::set_permissions(dir.path().join(&name), std::fs::Permissions::from_mode(0o666)).unwrap();
    let again = Arc::new(Host::new(HostConfig { cache_dir: Some(dir.path().to_path_buf()) }));
    let p = again.load("link-guard", &bytes).unwrap();
    let v = p.evaluate(&input("go to http://bad.example/", r#"{"allowed_hosts": []}"#), &Limits::default());
    assert!(matches!(v.unwrap(), Verdict::Redact(_)));
}
