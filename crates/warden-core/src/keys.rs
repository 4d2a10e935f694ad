//! Ed25519 key files, as `warden keygen` writes them: the 32-byte key in base64, one file for
//! the private key and one for the public key. Policy bundles (`warden sign`) and audit-trail
//! checkpoints are signed with them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::path::Path;

pub use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};

fn read_key_bytes(path: &Path) -> Result<[u8; 32], String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let bytes = B64.decode(text.trim()).map_err(|_| {
        format!("{}: not a key (expected base64 of 32 bytes, as `warden keygen` writes)", path.display())
    })?;
    bytes.try_into().map_err(|_| format!("{}: a key is 32 bytes", path.display()))
}

/// Reads a private key file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, String> {
    Ok(SigningKey::from_bytes(&read_key_bytes(path)?))
}

/// Reads a public key file.
pub fn read_verifying_key(path: &Path) -> Result<VerifyingKey, String> {
    VerifyingKey::from_bytes(&read_key_bytes(path)?)
        .map_err(|e| format!("{}: not a valid public key: {e}", path.display()))
}

/// A new key pair, as the two files' contents (private, public).
pub fn generate() -> Result<(String, String), String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness from the operating system: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    Ok((B64.encode(key.to_bytes()) + "\n", B64.encode(key.verifying_key().to_bytes()) + "\n"))
}

/// A signature in base64.
pub fn sign_b64(key: &SigningKey, message: &[u8]) -> String {
    B64.encode(key.sign(message).to_bytes())
}

/// Whether `sig` (base64) is `key`'s signature of `message`.
pub fn verify_b64(key: &VerifyingKey, message: &[u8], sig: &str) -> bool {
    let Ok(bytes) = B64.decode(sig.trim()) else { return false };
    let Ok(sig) = Signature::from_slice(&bytes) else { return false };
    key.verify(message, &sig).is_ok()
}
