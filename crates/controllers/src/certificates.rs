//! Node certificates: the approver and the signer of CertificateSigningRequests, as upstream's
//! `csrapproving` and `csrsigning` controllers do for nodes.
//!
//! - Approval: a `kubernetes.io/kube-apiserver-client-kubelet` request is approved when it asks
//!   for exactly what a kubelet client certificate is (subject `system:node:<name>` in
//!   `system:nodes`, no SANs, usages `client auth` and `digital signature` (and optionally `key
//!   encipherment`)) and comes from a bootstrap token (`system:bootstrappers`) or from that very
//!   node (renewal). A `kubernetes.io/kubelet-serving` request is approved when the node itself
//!   asks for a certificate for its own name with only DNS/IP SANs and server-auth usages.
//!   Anything else is left for a person (`kubectl certificate approve`).
//! - Signing: approved requests for the `kubernetes.io/kube-apiserver-client`,
//!   `kubernetes.io/kube-apiserver-client-kubelet` and `kubernetes.io/kubelet-serving` signers get
//!   a certificate from the cluster CA, valid for `expirationSeconds` (default one year) with
//!   the signer's usages.

use crate::Shutdown;
use crate::support::{ReconcileError, stopped};
use base64::Engine;
use futures::StreamExt;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use rcgen::{CertificateSigningRequestParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Signer of kubelet serving certificates.
pub const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// Signer of API client certificates (approved by hand).
pub const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";
/// Default lifetime of a signed certificate.
const DEFAULT_SECONDS: i64 = 365 * 24 * 3600;
/// Shortest lifetime granted, as upstream (10 minutes).
const MIN_SECONDS: i64 = 600;

/// The CA that signs.
pub struct Signer {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Signer {
    /// A signer from the cluster CA certificate and key (PEM).
    pub fn new(ca_pem: &str, key_pem: &str) -> anyhow::Result<Signer> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(ca_pem, key)?;
        Ok(Signer { ca_pem: ca_pem.to_string(), issuer })
    }

    /// Signs the PEM request for `signer_name`, valid for `seconds`; returns the certificate PEM.
    pub fn sign(&self, request_pem: &str, signer_name: &str, seconds: i64) -> Result<String, String> {
        let mut csr = CertificateSigningRequestParams::from_pem(request_pem)
            .map_err(|e| format!("the request is not a valid PEM CERTIFICATE REQUEST: {e}"))?;
        let now = time::OffsetDateTime::now_utc();
        csr.params.not_before = now - time::Duration::minutes(5);
        csr.params.not_after = now + time::Duration::seconds(seconds.max(MIN_SECONDS));
        csr.params.is_ca = rcgen::IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        csr.params.extended_key_usages = match signer_name {
            KUBELET_SERVING_SIGNER => vec![ExtendedKeyUsagePurpose::ServerAuth],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        csr.params.use_authority_key_identifier_extension = true;
        let cert = csr.signed_by(&self.issuer).map_err(|e| format!("cannot sign: {e}"))?;
        let _ = &self.ca_pem;
        Ok(cert.pem())
    }
}

/// What a request asks for, read from its PEM.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requested {
    /// Subject common name.
    pub common_name: String,
    /// Subject organizations.
    pub organizations: Vec<String>,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// IP SANs.
    pub ips: usize,
    /// Other SANs (emails, URIs).
    pub other_sans: usize,
}

/// Reads the subject and SANs of a PEM certificate request.
pub fn requested(request_pem: &str) -> Option<Requested> {
    let csr = CertificateSigningRequestParams::from_pem(request_pem).ok()?;
    let mut out = Requested::default();
    for (kind, value) in csr.params.distinguished_name.iter() {
        let text = match value {
            rcgen::DnValue::Utf8String(s) => s.clone(),
            rcgen::DnValue::PrintableString(s) => AsRef::<str>::as_ref(s).to_string(),
            rcgen::DnValue::Ia5String(s) => AsRef::<str>::as_ref(s).to_string(),
            other => format!("{other:?}"),
        };
        match kind {
            rcgen::DnType::CommonName => out.common_name = text,
            rcgen::DnType::OrganizationName => out.organizations.push(text),
            _ => {}
        }
    }
    for san in &csr.params.subject_alt_names {
        match san {
            rcgen::SanType::DnsName(d) => out.dns_names.push(d.to_string()),
            rcgen::SanType::IpAddress(_) => out.ips += 1,
            _ => out.other_sans += 1,
        }
    }
    Some(out)
}

/// Whether the request should be approved automatically, with the reason to record.
pub fn auto_approval(csr: &CertificateSigningRequest) -> Option<(&'static str, &'static str)> {
    let spec = &csr.spec;
    let request = String::from_utf8(spec.request.0.clone()).ok()?;
    let req = requested(&request)?;
    let usages: Vec<&str> = spec.usages.iter().flatten().map(String::as_str).collect();
    let user = spec.username.as_deref().unwrap_or("");
    let groups = spec.groups.clone().unwrap_or_default();
    let node = req.common_name.strip_prefix("system:node:").filter(|n| !n.is_empty())?;
    if req.organizations != ["system:nodes"] {
        return None;
    }
    let allowed = |extra: &[&str]| {
        usages.iter().all(|u| ["digital signature", "key encipherment"].contains(u) || extra.contains(u))
            && extra.iter().all(|e| usages.contains(e))
    };
    match spec.signer_name.as_str() {
        KUBELET_CLIENT_SIGNER => {
            let sans = req.dns_names.len() + req.ips + req.other_sans;
            if sans != 0 || !allowed(&["client auth"]) {
                return None;
            }
            if groups.iter().any(|g| g == "system:bootstrappers") {
                Some(("AutoApproved", "Auto approving kubelet client certificate after SubjectAccessReview."))
            } else if user == req.common_name {
                Some(("AutoApproved", "Auto approving self kubelet client certificate after SubjectAccessReview."))
            } else {
                None
            }
        }
        KUBELET_SERVING_SIGNER => {
            if user != req.common_name || req.other_sans != 0 || !allowed(&["server auth"]) {
                return None;
            }
            if req.dns_names.is_empty() && req.ips == 0 {
                return None;
            }
            let _ = node;
            Some(("AutoApproved", "Auto approving kubelet serving certificate for the node itself."))
        }
        _ => None,
    }
}

fn condition(csr: &CertificateSigningRequest, kind: &str) -> bool {
    csr.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|l| l.iter().any(|c| c.type_ == kind))
}

struct Ctx {
    client: Client,
    signer: Option<Signer>,
}

/// A status patch adding condition `kind` (status True) to the request's conditions.
fn with_condition(csr: &CertificateSigningRequest, kind: &str, reason: &str, message: &str) -> serde_json::Value {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut conditions: Vec<serde_json::Value> = csr
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(|l| l.iter().filter_map(|c| serde_json::to_value(c).ok()).collect())
        .unwrap_or_default();
    conditions.push(json!({
        "type": kind, "status": "True", "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": now,
    }));
    json!({ "status": { "conditions": conditions } })
}

async fn reconcile(csr: Arc<CertificateSigningRequest>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    let name = csr.name_any();
    let (approved, denied, failed) =
        (condition(&csr, "Approved"), condition(&csr, "Denied"), condition(&csr, "Failed"));
    if denied || failed {
        return Ok(Action::await_change());
    }
    if !approved {
        if let Some((reason, message)) = auto_approval(&csr) {
            let patch = with_condition(&csr, "Approved", reason, message);
            api.patch_approval(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
        }
        return Ok(Action::await_change());
    }
    let signed = csr.status.as_ref().and_then(|s| s.certificate.as_ref()).is_some_and(|c| !c.0.is_empty());
    let Some(signer) = &ctx.signer else { return Ok(Action::await_change()) };
    if signed
        || ![KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, CLIENT_SIGNER].contains(&csr.spec.signer_name.as_str())
    {
        return Ok(Action::await_change());
    }
    let request = String::from_utf8_lossy(&csr.spec.request.0).into_owned();
    let seconds = csr.spec.expiration_seconds.map(i64::from).unwrap_or(DEFAULT_SECONDS);
    let patch = match signer.sign(&request, &csr.spec.signer_name, seconds) {
        Ok(pem) => json!({ "status": { "certificate": base64::engine::general_purpose::STANDARD.encode(pem) } }),
        Err(message) => with_condition(&csr, "Failed", "SignerValidationFailure", &message),
    };
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(patch)).await?;
    Ok(Action::await_change())
}

fn error_policy(_: Arc<CertificateSigningRequest>, e: &ReconcileError, _: Arc<Ctx>) -> Action {
    tracing::debug!("certificate signing request: {e}");
    Action::requeue(Duration::from_secs(2))
}

/// Runs the approver and signer until `shutdown` turns true. Without the CA key, requests are
/// approved but not signed.
pub async fn run(client: Client, ca: Option<(String, String)>, shutdown: Shutdown) -> anyhow::Result<()> {
    let signer = match ca {
        Some((cert, key)) => Some(Signer::new(&cert, &key)?),
        None => None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let ctx = Arc::new(Ctx { client, signer });
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(stopped(shutdown))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType};

    fn ca() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "test-ca");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn request(cn: &str, org: &str, sans: &[&str]) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, org);
        params.distinguished_name = dn;
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn csr(signer: &str, pem: &str, user: &str, groups: &[&str], usages: &[&str]) -> CertificateSigningRequest {
        serde_json::from_value(json!({
            "metadata": {"name": "x"},
            "spec": {
                "signerName": signer,
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "username": user, "groups": groups, "usages": usages,
            }
        }))
        .unwrap()
    }

    #[test]
    fn kubelet_client_requests_from_bootstrappers_are_approved() {
        let pem = request("system:node:n1", "system:nodes", &[]);
        let usages = ["digital signature", "client auth"];
        let c = csr(KUBELET_CLIENT_SIGNER, &pem, "system:bootstrap:abcdef", &["system:bootstrappers"], &usages);
        assert_eq!(auto_approval(&c).unwrap().0, "AutoApproved");
        // Renewal by the node itself.
        let c = csr(KUBELET_CLIENT_SIGNER, &pem, "system:node:n1", &["system:nodes"], &usages);
        assert!(auto_approval(&c).is_some());
        // Somebody else, the wrong organization, or server usages: left for a person.
        let c = csr(KUBELET_CLIENT_SIGNER, &pem, "alice", &["devs"], &usages);
        assert!(auto_approval(&c).is_none());
        let wrong = request("system:node:n1", "admins", &[]);
        let c = csr(KUBELET_CLIENT_SIGNER, &wrong, "system:bootstrap:abcdef", &["system:bootstrappers"], &usages);
        assert!(auto_approval(&c).is_none());
        let c =
            csr(KUBELET_CLIENT_SIGNER, &pem, "system:bootstrap:abcdef", &["system:bootstrappers"], &["server auth"]);
        assert!(auto_approval(&c).is_none());
    }

    #[test]
    fn serving_requests_only_from_the_node_itself() {
        let pem = request("system:node:n1", "system:nodes", &["n1", "192.0.2.7"]);
        let usages = ["digital signature", "key encipherment", "server auth"];
        let c = csr(KUBELET_SERVING_SIGNER, &pem, "system:node:n1", &["system:nodes"], &usages);
        assert!(auto_approval(&c).is_some());
        let c = csr(KUBELET_SERVING_SIGNER, &pem, "system:node:n2", &["system:nodes"], &usages);
        assert!(auto_approval(&c).is_none());
    }

    #[test]
    fn signed_certificates_carry_the_signers_usage() {
        let (ca_pem, key_pem) = ca();
        let signer = Signer::new(&ca_pem, &key_pem).unwrap();
        let pem = signer.sign(&request("system:node:n1", "system:nodes", &[]), KUBELET_CLIENT_SIGNER, 3600).unwrap();
        let der = rustls_pemfile_like(&pem);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), "system:node:n1");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(signer.sign("garbage", KUBELET_CLIENT_SIGNER, 3600).is_err());
    }

    fn rustls_pemfile_like(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD.decode(body).unwrap()
    }
}
