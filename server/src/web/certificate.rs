//! `/api/admin/certificate`: which certificate HTTPS shows browsers, and
//! the owner's own (uploaded, or files on the data disk) instead of the box
//! key's self-signed one. See [`crate::own_cert`] for the checks and the
//! files, [`crate::tls::HttpsCertificates`] for the switch.

use std::path::PathBuf;

use hyper::body::Incoming;
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::ApiError;
use super::reply::{json, read_json_up_to, Reply};
use super::{Caller, Web};
use crate::own_cert::{self, CertificateInfo, OwnCertFiles, OwnCertificate, Source};

/// The largest request body: a chain of a few certificates plus an RSA key
/// is well over the 16 KiB of the other endpoints.
pub const MAX_CERTIFICATE_BODY: usize = 64 * 1024;

/// `PUT /api/admin/certificate`: PEM text, or paths in the data directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertificateChange {
    #[serde(default)]
    chain_pem: Option<String>,
    #[serde(default)]
    key_pem: Option<String>,
    #[serde(default)]
    chain_path: Option<PathBuf>,
    #[serde(default)]
    key_path: Option<PathBuf>,
}

/// What `GET` answers.
#[derive(Debug, Serialize)]
struct CertificateReport {
    /// The certificate browsers are shown now.
    #[serde(flatten)]
    current: CertificateInfo,
    /// The box key's own, which apps always get (and browsers when
    /// `source` is `box`).
    box_certificate: Option<CertificateInfo>,
    /// Why the owner's chosen certificate is not served, when it could not
    /// be loaded at start.
    problem: Option<String>,
}

/// `/api/admin/certificate`, after the administrator and CSRF checks.
pub async fn route(web: &Web, caller: &Caller, parts: &Parts, body: Incoming) -> Result<Reply, ApiError> {
    let files = OwnCertFiles::new(&web.data_dir);
    match parts.method {
        Method::GET => report(web),
        Method::PUT => {
            let change: CertificateChange = read_json_up_to(parts, body, MAX_CERTIFICATE_BODY).await?;
            let certs = web.certs.clone();
            let info = blocking(move || {
                let _one = certs.one_change_at_a_time();
                let own = install(change, &files)?;
                let info = own.info.clone();
                certs.set_own(Some(own));
                Ok(info)
            })
            .await?;
            tracing::info!(
                by = %caller.account.name, source = ?info.source, subject = %info.subject,
                sha256 = %info.sha256, "HTTPS now serves the owner's certificate to browsers"
            );
            report(web)
        }
        Method::DELETE => {
            let certs = web.certs.clone();
            blocking(move || {
                let _one = certs.one_change_at_a_time();
                files.clear()?;
                certs.set_own(None);
                Ok(())
            })
            .await?;
            tracing::info!(by = %caller.account.name, "HTTPS serves the box's own certificate again");
            report(web)
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Checks the certificate a change names and stores the choice.
fn install(change: CertificateChange, files: &OwnCertFiles) -> Result<OwnCertificate, ApiError> {
    let now = OffsetDateTime::now_utc();
    match change {
        CertificateChange { chain_pem: Some(chain), key_pem: Some(key), chain_path: None, key_path: None } => {
            let own = own_cert::validate(chain.as_bytes(), key.as_bytes(), Source::Uploaded, now)?;
            files.save_uploaded(&chain, &key)?;
            Ok(own)
        }
        CertificateChange { chain_pem: None, key_pem: None, chain_path: Some(chain), key_path: Some(key) } => {
            let own = files.from_files(&chain, &key, now)?;
            files.save_files(&chain, &key)?;
            Ok(own)
        }
        _ => Err(ApiError::BadRequest(
            "give either chain_pem and key_pem (PEM text) or chain_path and key_path (files in the data directory)"
                .into(),
        )),
    }
}

/// Runs file work (reads, fsyncs) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::Internal(e.to_string()))?
}

fn report(web: &Web) -> Result<Reply, ApiError> {
    let now = OffsetDateTime::now_utc();
    let box_certificate =
        web.certs.box_certificate().and_then(|der| own_cert::describe(&[der], Source::Box, now));
    let current = match web.certs.own() {
        Some(mut own) => {
            own.warning = own.warning_at(now);
            own
        }
        None => box_certificate
            .clone()
            .ok_or_else(|| ApiError::Internal("the box's own certificate cannot be read".into()))?,
    };
    Ok(json(StatusCode::OK, &CertificateReport { current, box_certificate, problem: web.certs.problem() }))
}
