//! Message signatures as SNS makes them, and the key pair and certificate behind them.
//!
//! SNS signs a canonical string of the message's fields ("Key\nvalue\n" for each
//! signed field, in a fixed order) with RSA PKCS#1 v1.5: SHA-1 for
//! `SignatureVersion` 1, SHA-256 for 2. A subscriber fetches the certificate at
//! `SigningCertURL` and verifies exactly as it would against real SNS.
//!
//! The 2048-bit key is made once, at first start, and kept in the data dir as
//! PKCS#8 PEM (mode 0600) beside a self-signed X.509 certificate, so subscribers
//! that cached the certificate keep verifying across restarts.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::signature::{SignatureEncoding, Signer as _};
use rsa::RsaPrivateKey;

use crate::EngineError;

/// File names inside the data dir.
pub const KEY_FILE: &str = "sns-signing-key.pem";
pub const CERT_FILE: &str = "sns-signing-cert.pem";

/// SNS's two signature versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    /// SHA1withRSA, SNS's default.
    V1,
    /// SHA256withRSA.
    V2,
}

impl SignatureVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "1",
            Self::V2 => "2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1" => Some(Self::V1),
            "2" => Some(Self::V2),
            _ => None,
        }
    }
}

/// The engine's signing identity.
pub struct Signer {
    v1: SigningKey<sha1::Sha1>,
    v2: SigningKey<sha2::Sha256>,
    cert_pem: String,
}

impl Signer {
    /// Loads the key and certificate from `dir`, making them on first start (and
    /// the certificate again if only it went missing).
    pub fn load_or_create(dir: &Path) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("creating", dir, e))?;
        let key_path = dir.join(KEY_FILE);
        let cert_path = dir.join(CERT_FILE);
        let (key, key_pem) = if key_path.exists() {
            let pem =
                std::fs::read_to_string(&key_path).map_err(|e| io_err("reading", &key_path, e))?;
            let key = RsaPrivateKey::from_pkcs8_pem(&pem)
                .map_err(|e| EngineError::Signing(format!("{}: {e}", key_path.display())))?;
            (key, pem)
        } else {
            let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| EngineError::Signing(format!("generating the RSA key: {e}")))?;
            let pem = key
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| EngineError::Signing(format!("encoding the RSA key: {e}")))?
                .to_string();
            write_private(&key_path, &pem)?;
            let _ = std::fs::remove_file(&cert_path);
            (key, pem)
        };
        let cert_pem = if cert_path.exists() {
            std::fs::read_to_string(&cert_path).map_err(|e| io_err("reading", &cert_path, e))?
        } else {
            let pem = self_signed_cert(&key_pem)?;
            std::fs::write(&cert_path, &pem).map_err(|e| io_err("writing", &cert_path, e))?;
            pem
        };
        Ok(Self {
            v1: SigningKey::new(key.clone()),
            v2: SigningKey::new(key),
            cert_pem,
        })
    }

    /// Base64 of the RSA signature of `canonical` under `version`.
    pub fn sign(&self, version: SignatureVersion, canonical: &[u8]) -> String {
        let sig = match version {
            SignatureVersion::V1 => self.v1.sign(canonical).to_vec(),
            SignatureVersion::V2 => self.v2.sign(canonical).to_vec(),
        };
        base64::engine::general_purpose::STANDARD.encode(sig)
    }

    /// The certificate served at `SigningCertURL`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

fn self_signed_cert(key_pem: &str) -> Result<String, EngineError> {
    let e = |e: rcgen::Error| EngineError::Signing(format!("making the certificate: {e}"));
    let kp = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(e)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["sns.interstella-hq.local".to_string()]).map_err(e)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sns.interstella-hq.local");
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Interstella HQ");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    Ok(params.self_signed(&kp).map_err(e)?.pem())
}

fn write_private(path: &PathBuf, pem: &str) -> Result<(), EngineError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| io_err("creating", path, e))?;
    f.write_all(pem.as_bytes())
        .map_err(|e| io_err("writing", path, e))?;
    f.sync_all().map_err(|e| io_err("syncing", path, e))
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> EngineError {
    EngineError::Io(format!("{what} {}: {e}", path.display()))
}

/// SNS's canonical string for a Notification.
pub fn notification_canonical(
    message: &str,
    message_id: &str,
    subject: Option<&str>,
    timestamp: &str,
    topic_arn: &str,
) -> String {
    let mut s = String::with_capacity(message.len() + 200);
    for (k, v) in [("Message", message), ("MessageId", message_id)] {
        push_field(&mut s, k, v);
    }
    if let Some(subject) = subject {
        push_field(&mut s, "Subject", subject);
    }
    for (k, v) in [
        ("Timestamp", timestamp),
        ("TopicArn", topic_arn),
        ("Type", "Notification"),
    ] {
        push_field(&mut s, k, v);
    }
    s
}

/// SNS's canonical string for a SubscriptionConfirmation / UnsubscribeConfirmation.
pub fn confirmation_canonical(
    kind: &str,
    message: &str,
    message_id: &str,
    subscribe_url: &str,
    timestamp: &str,
    token: &str,
    topic_arn: &str,
) -> String {
    let mut s = String::with_capacity(message.len() + subscribe_url.len() + token.len() + 200);
    for (k, v) in [
        ("Message", message),
        ("MessageId", message_id),
        ("SubscribeURL", subscribe_url),
        ("Timestamp", timestamp),
        ("Token", token),
        ("TopicArn", topic_arn),
        ("Type", kind),
    ] {
        push_field(&mut s, k, v);
    }
    s
}

fn push_field(s: &mut String, k: &str, v: &str) {
    s.push_str(k);
    s.push('\n');
    s.push_str(v);
    s.push('\n');
}
