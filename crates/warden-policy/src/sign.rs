//! Signed policy bundles: an ed25519 signature over a manifest of every file's sha256.
//!
//! `warden sign --key KEY DIR` writes `DIR/.warden-signature`; `warden serve --verify-key PUB`
//! refuses, at start and at every reload, a directory that is unsigned, signed by another key, or
//! whose files differ in any byte from what was signed (a file changed, added or removed).
//! Keys are files holding the 32-byte key in base64; `warden keygen` makes a pair.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

pub use ed25519_dalek::VerifyingKey;

/// The signature file's name in the policy directory (hidden, so not part of the manifest).
pub const SIGNATURE_FILE: &str = ".warden-signature";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    version: u32,
    /// Relative path to sha256 (hex).
    manifest: BTreeMap<String, String>,
    /// base64 ed25519 signature over the canonical manifest.
    signature: String,
}

/// Every non-hidden file under `dir` with its sha256, sorted by relative path.
pub fn manifest(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut files = Vec::new();
    crate::load::walk(dir, &mut files)?;
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(dir).unwrap_or(&f).to_string_lossy().replace('\\', "/");
        out.insert(rel, hex::encode(Sha256::digest(std::fs::read(&f)?)));
    }
    Ok(out)
}

fn canonical(m: &BTreeMap<String, String>) -> Vec<u8> {
    let mut s = String::from("warden-policy-manifest-v1\n");
    for (path, sha) in m {
        s.push_str(sha);
        s.push_str("  ");
        s.push_str(path);
        s.push('\n');
    }
    s.into_bytes()
}

pub use warden_core::keys::{generate, read_signing_key, read_verifying_key};

/// Signs the directory: writes `DIR/.warden-signature`. Returns how many files it covers.
pub fn sign_dir(dir: &Path, key: &SigningKey) -> Result<usize, String> {
    let m = manifest(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let sig = key.sign(&canonical(&m));
    let n = m.len();
    let file = SignatureFile { version: 1, manifest: m, signature: B64.encode(sig.to_bytes()) };
    let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(SIGNATURE_FILE), text + "\n").map_err(|e| format!("cannot write the signature: {e}"))?;
    Ok(n)
}

/// Checks that `dir` is signed by `key` and unchanged since. The error says what differs.
pub fn verify_dir(dir: &Path, key: &VerifyingKey) -> Result<(), String> {
    let now = manifest(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    verify_manifest(dir, key, &now)
}

/// Like [`verify_dir`], with the directory's current manifest already computed.
pub fn verify_manifest(dir: &Path, key: &VerifyingKey, now: &BTreeMap<String, String>) -> Result<(), String> {
    let path = dir.join(SIGNATURE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "the policy directory is not signed ({SIGNATURE_FILE} is missing); sign it with `warden sign --key KEY {}`",
            dir.display()
        )
    })?;
    let file: SignatureFile =
        serde_json::from_str(&text).map_err(|e| format!("{SIGNATURE_FILE} is not a valid signature file: {e}"))?;
    let sig = B64
        .decode(&file.signature)
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| format!("{SIGNATURE_FILE}: the signature is malformed"))?;
    key.verify(&canonical(&file.manifest), &sig)
        .map_err(|_| "the policy signature does not verify with the configured key: signed by another key, or the manifest was edited".to_string())?;
    let mut problems = Vec::new();
    for (p, sha) in now {
        match file.manifest.get(p) {
            None => problems.push(format!("`{p}` was added after signing")),
            Some(s) if s != sha => problems.push(format!("`{p}` changed after signing")),
            _ => {}
        }
    }
    for p in file.manifest.keys().filter(|p| !now.contains_key(*p)) {
        problems.push(format!("`{p}` was removed after signing"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the policy directory does not match its signature: {}", problems.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_changed_byte_is_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.yaml"), "name: a\n").unwrap();
        std::fs::create_dir(d.path().join("lists")).unwrap();
        std::fs::write(d.path().join("lists/t.txt"), "BadMagic\n").unwrap();
        let (private, public) = generate().unwrap();
        let sk = SigningKey::from_bytes(&B64.decode(private.trim()).unwrap().try_into().unwrap());
        let pk = VerifyingKey::from_bytes(&B64.decode(public.trim()).unwrap().try_into().unwrap()).unwrap();
        assert!(verify_dir(d.path(), &pk).unwrap_err().contains("not signed"));
        assert_eq!(sign_dir(d.path(), &sk).unwrap(), 2);
        verify_dir(d.path(), &pk).unwrap();
        std::fs::write(d.path().join("lists/t.txt"), "BadMagiC\n").unwrap();
        assert!(verify_dir(d.path(), &pk).unwrap_err().contains("`lists/t.txt` changed"));
        std::fs::write(d.path().join("lists/t.txt"), "BadMagic\n").unwrap();
        std::fs::write(d.path().join("b.yaml"), "x").unwrap();
        assert!(verify_dir(d.path(), &pk).unwrap_err().contains("`b.yaml` was added"));
        std::fs::remove_file(d.path().join("b.yaml")).unwrap();
        let (_, other) = generate().unwrap();
        let other = VerifyingKey::from_bytes(&B64.decode(other.trim()).unwrap().try_into().unwrap()).unwrap();
        assert!(verify_dir(d.path(), &other).unwrap_err().contains("another key"));
    }
}
