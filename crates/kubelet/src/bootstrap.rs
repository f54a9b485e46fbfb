//! Joining a cluster, as kubelet TLS bootstrap does: with a join token
//! (`K10<sha256 of the CA PEM>::<id>.<secret>`) the agent fetches the cluster CA from the
//! server's `/cacerts` and checks it against the token's hash, then, authenticated as the
//! bootstrap token, asks for a client certificate through a CertificateSigningRequest
//! (`kubernetes.io/kube-apiserver-client-kubelet`, approved and signed by the controller
//! manager), and keeps it in `kubelet.kubeconfig`. With that identity (`system:node:<name>`) it
//! asks for its serving certificate (`kubernetes.io/kubelet-serving`) for its HTTPS API.

use crate::server::ServerTls;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::Client;
use kube::api::{Api, PostParams};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The join token's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex SHA-256 of the CA certificate PEM; empty when the token carries none.
    pub ca_hash: String,
    /// `<id>.<secret>`, a bootstrap token.
    pub bearer: String,
}

impl JoinToken {
    /// Reads `K10<hash>::<id>.<secret>` or a bare `<id>.<secret>`.
    pub fn parse(text: &str) -> Result<JoinToken> {
        let text = text.trim();
        let (ca_hash, bearer) = match text.strip_prefix("K10").and_then(|r| r.split_once("::")) {
            Some((h, t)) => (h.to_string(), t.to_string()),
            None => (String::new(), text.to_string()),
        };
        let valid = bearer.split_once('.').is_some_and(|(id, secret)| {
            let ok =
                |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            ok(id, 6) && ok(secret, 16)
        });
        if !valid || !(ca_hash.is_empty() || ca_hash.len() == 64) {
            bail!(
                "the join token is malformed: expected K10<CA hash>::<id>.<secret> as the server's agent-token file holds"
            );
        }
        Ok(JoinToken { ca_hash, bearer })
    }
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn pem_to_der(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END CERTIFICATE") {
            inside = false;
            if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body.trim()) {
                out.push(der);
            }
        } else if inside {
            body.push_str(line.trim());
        }
    }
    out
}

async fn client_for(server: &str, ca_pem: &str, auth: kube::config::AuthInfo, insecure: bool) -> Result<Client> {
    let mut config = kube::Config::new(server.parse().with_context(|| format!("{server:?} is not a URL"))?);
    config.root_cert = if insecure { None } else { Some(pem_to_der(ca_pem)) };
    config.accept_invalid_certs = insecure;
    config.auth_info = auth;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    Client::try_from(config).context("cannot build an API client")
}

/// Fetches the CA from `/cacerts` and checks it against the token.
async fn fetch_ca(server: &str, token: &JoinToken) -> Result<String> {
    let anonymous = client_for(server, "", kube::config::AuthInfo::default(), true).await?;
    let request = http::Request::get("/cacerts").body(Vec::new())?;
    let ca = anonymous
        .request_text(request)
        .await
        .with_context(|| format!("cannot fetch the cluster CA from {server}/cacerts"))?;
    if !ca.contains("BEGIN CERTIFICATE") {
        bail!("{server}/cacerts did not answer with a certificate");
    }
    if !token.ca_hash.is_empty() && sha256_hex(ca.as_bytes()) != token.ca_hash {
        bail!(
            "the CA served by {server} does not match the join token's hash: wrong server, or a token of another cluster"
        );
    }
    Ok(ca)
}

/// Asks for a certificate through a CSR and waits for it; returns the certificate PEM.
async fn request_certificate(
    client: &Client,
    key: &KeyPair,
    node: &str,
    signer: &str,
    usages: &[&str],
    sans: &[String],
) -> Result<String> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("system:node:{node}"));
    dn.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    for s in sans {
        params.subject_alt_names.push(match s.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(s.clone().try_into()?),
        });
    }
    let pem = params.serialize_request(key)?.pem()?;
    let suffix: String = sha256_hex(pem.as_bytes())[..12].to_string();
    let name = format!("node-csr-{node}-{suffix}");
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let csr: CertificateSigningRequest = serde_json::from_value(json!({
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": { "name": name },
        "spec": { "signerName": signer, "usages": usages, "request": ByteString(pem.into_bytes()) },
    }))?;
    match api.create(&PostParams::default(), &csr).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e).context("cannot create the certificate signing request"),
    }
    let started = Instant::now();
    loop {
        let current = api.get(&name).await.context("cannot read the certificate signing request")?;
        if let Some(status) = &current.status {
            if let Some(c) = status.conditions.iter().flatten().find(|c| c.type_ == "Denied" || c.type_ == "Failed") {
                bail!(
                    "certificate signing request {name} was {}: {}",
                    c.type_.to_lowercase(),
                    c.message.clone().unwrap_or_default()
                );
            }
            if let Some(cert) = status.certificate.as_ref().filter(|c| !c.0.is_empty()) {
                return String::from_utf8(cert.0.clone()).map_err(|_| anyhow!("the issued certificate is not PEM"));
            }
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "certificate signing request {name} was not signed within 2 minutes; is the controller manager running? \
                 (kubectl get csr {name})"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Writes a kubeconfig with a client certificate.
fn write_kubeconfig(path: &Path, server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<()> {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "rudder", "cluster": { "server": server, "certificate-authority-data": b(ca_pem) } }],
        "users": [{ "name": "node", "user": { "client-certificate-data": b(cert_pem), "client-key-data": b(key_pem) } }],
        "contexts": [{ "name": "node", "context": { "cluster": "rudder", "user": "node" } }],
        "current-context": "node",
    });
    let text = serde_json::to_string_pretty(&config)?;
    std::fs::write(path, text)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}

async fn client_from_kubeconfig(path: &Path) -> Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).context("cannot read the node's kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Client::try_from(config).context("cannot build the node's API client")
}

/// What joining gives the agent.
pub struct Joined {
    /// A client acting as `system:node:<name>`.
    pub client: Client,
    /// TLS of the kubelet's HTTPS API.
    pub tls: ServerTls,
    /// The node's kubeconfig.
    pub kubeconfig: PathBuf,
}

/// Joins the cluster at `server` as node `node`; `dir` keeps the node's credentials, so a
/// restarted agent reuses its client certificate. `hosts` are the names and addresses the
/// serving certificate covers.
pub async fn join(server: &str, token: &str, dir: &Path, node: &str, hosts: &[String]) -> Result<Joined> {
    std::fs::create_dir_all(dir)?;
    let token = JoinToken::parse(token)?;
    let ca = fetch_ca(server, &token).await?;
    let kubeconfig = dir.join("kubelet.kubeconfig");
    let reusable = kubeconfig.exists()
        && match client_from_kubeconfig(&kubeconfig).await {
            Ok(c) => c.apiserver_version().await.is_ok(),
            Err(_) => false,
        };
    if !reusable {
        let bootstrap = kube::config::AuthInfo { token: Some(token.bearer.clone().into()), ..Default::default() };
        let client = client_for(server, &ca, bootstrap, false).await?;
        let key = KeyPair::generate()?;
        let cert = request_certificate(
            &client,
            &key,
            node,
            "kubernetes.io/kube-apiserver-client-kubelet",
            &["digital signature", "client auth"],
            &[],
        )
        .await
        .context("cannot get the node's client certificate")?;
        write_kubeconfig(&kubeconfig, server, &ca, &cert, &key.serialize_pem())?;
    }
    let client = client_from_kubeconfig(&kubeconfig).await?;
    let key = KeyPair::generate()?;
    let cert = request_certificate(
        &client,
        &key,
        node,
        "kubernetes.io/kubelet-serving",
        &["digital signature", "key encipherment", "server auth"],
        hosts,
    )
    .await
    .context("cannot get the node's serving certificate")?;
    let tls = ServerTls { cert_pem: format!("{cert}{ca}"), key_pem: key.serialize_pem(), client_ca_pem: ca };
    Ok(Joined { client, tls, kubeconfig })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_tokens_parse() {
        let hash = "a".repeat(64);
        let t = JoinToken::parse(&format!("K10{hash}::abcdef.0123456789abcdef\n")).unwrap();
        assert_eq!((t.ca_hash.as_str(), t.bearer.as_str()), (hash.as_str(), "abcdef.0123456789abcdef"));
        let bare = JoinToken::parse("abcdef.0123456789abcdef").unwrap();
        assert!(bare.ca_hash.is_empty());
        assert!(JoinToken::parse("K10abc::abcdef.0123456789abcdef").is_err());
        assert!(JoinToken::parse("nonsense").is_err());
    }

    #[test]
    fn certificates_are_read_from_pem() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["x".to_string()]).unwrap().self_signed(&key).unwrap();
        let two = format!("{}{}", cert.pem(), cert.pem());
        let ders = pem_to_der(&two);
        assert_eq!(ders.len(), 2);
        assert_eq!(ders[0], cert.der().to_vec());
    }
}
