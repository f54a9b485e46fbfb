//! The cluster's certificates and tokens, kept under `<data-dir>/tls` and `<data-dir>/token`.
//!
//! On first start a CA, an admin client certificate (`O=system:masters`), an admin bearer
//! token and the service-account signing key (`tls/service-account.key`, ECDSA P-256 in
//! PKCS#8 PEM) are made; later starts reuse them. The serving certificate is made anew at every
//! start from the same CA, so its names always match the current bind address and hostname.
//!
//! For the way to the kubelets there is a client certificate the API server presents to them
//! (`tls/kubelet-client.crt`, CN `kube-apiserver-kubelet-client`, O `system:masters`), and
//! [`kubelet_serving_cert`] signs a kubelet's serving certificate with the cluster CA.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Certificates and keys the server needs, as PEM.
pub struct Pki {
    /// The cluster CA certificate.
    pub ca_cert_pem: String,
    /// The serving certificate (signed by the CA).
    pub serving_cert_pem: String,
    /// The serving key.
    pub serving_key_pem: String,
    /// The admin client certificate.
    pub admin_cert_pem: String,
    /// The admin client key.
    pub admin_key_pem: String,
    /// The admin bearer token (also in the token file).
    pub admin_token: String,
    /// Path of the static token file.
    pub token_file: PathBuf,
    /// The key that signs service-account tokens, PKCS#8 DER.
    pub service_account_key: Vec<u8>,
    /// The client certificate the API server presents to kubelets.
    pub kubelet_client_cert_pem: String,
    /// Its key.
    pub kubelet_client_key_pem: String,
}

/// The CN of the API server's client certificate towards kubelets.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// A client certificate signed by the CA, kept across starts at `<dir>/<name>.crt/.key`.
fn ensure_client_cert(
    dir: &Path,
    name: &str,
    cn: &str,
    org: &str,
    issuer: &Issuer<'_, KeyPair>,
) -> Result<(String, String)> {
    let crt = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    if !crt.exists() || !key_path.exists() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn.push(DnType::OrganizationName, org);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, 1);
        let cert = params.signed_by(&key, issuer).with_context(|| format!("cannot sign the {name} certificate"))?;
        write_private(&key_path, &key.serialize_pem())?;
        fs::write(&crt, cert.pem()).with_context(|| format!("cannot write {}", crt.display()))?;
    }
    Ok((
        fs::read_to_string(&crt).with_context(|| format!("cannot read {}", crt.display()))?,
        fs::read_to_string(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?,
    ))
}

/// The cluster CA of a data dir, ready to sign.
fn load_issuer(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>)> {
    let ca_crt = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let ca_cert_pem = fs::read_to_string(&ca_crt).with_context(|| format!("cannot read {}", ca_crt.display()))?;
    let ca_key_pem = fs::read_to_string(&ca_key).with_context(|| format!("cannot read {}", ca_key.display()))?;
    let ca_keypair = KeyPair::from_pem(&ca_key_pem).context("the CA key is not a valid PEM private key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_keypair).context("the CA certificate cannot be read")?;
    Ok((ca_cert_pem, issuer))
}

/// The SAN entries for a list of names: IP addresses as such, the rest as DNS names.
fn sans(names: &[String]) -> Result<Vec<SanType>> {
    let mut out = Vec::new();
    for n in names.iter().filter(|n| !n.is_empty()) {
        out.push(match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                n.clone().try_into().with_context(|| format!("{n:?} is neither an IP address nor a DNS name"))?,
            ),
        });
    }
    Ok(out)
}

/// A kubelet's serving certificate, signed by the cluster CA.
#[derive(Clone, Debug)]
pub struct KubeletServing {
    /// The certificate followed by the CA certificate.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
    /// The cluster CA certificate: the kubelet's clients (the API server) are signed by it.
    pub ca_pem: String,
}

/// Issues a serving certificate for the kubelet of `node_name`, covering `hosts` (DNS names
/// and IP addresses; the node name is always included), signed by the CA of `data_dir`
/// (which [`ensure`] must have made). Its subject is upstream's `system:node:<name>` in
/// `system:nodes`; it is made anew at every call and never written to disk.
pub fn kubelet_serving_cert(data_dir: &Path, node_name: &str, hosts: &[String]) -> Result<KubeletServing> {
    let (ca_pem, issuer) = load_issuer(&data_dir.join("tls"))?;
    let mut names = vec![node_name.to_string()];
    for h in hosts {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans(&names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("system:node:{node_name}"));
    dn.push(DnType::OrganizationName, "system:nodes");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 1);
    let cert = params.signed_by(&key, &issuer).context("cannot sign the kubelet serving certificate")?;
    Ok(KubeletServing { cert_pem: format!("{}{}", cert.pem(), ca_pem), key_pem: key.serialize_pem(), ca_pem })
}

/// Where the join token for agents is kept.
pub const JOIN_TOKEN_FILE: &str = "agent-token";

/// The token agents join with, like k3s's: `K10<sha256 of the CA certificate PEM>::<id>.<secret>`
/// where `<id>.<secret>` is a bootstrap token (`kube-system/bootstrap-token-<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinToken {
    /// Hex SHA-256 of the cluster CA certificate (PEM bytes).
    pub ca_hash: String,
    /// Bootstrap token id (6 characters).
    pub id: String,
    /// Bootstrap token secret (16 characters).
    pub secret: String,
}

impl JoinToken {
    /// The token as agents are given it.
    pub fn render(&self) -> String {
        format!("K10{}::{}.{}", self.ca_hash, self.id, self.secret)
    }

    /// Reads a token as rendered; also accepts a bare `<id>.<secret>` (no CA check then).
    pub fn parse(text: &str) -> Option<JoinToken> {
        let text = text.trim();
        let (hash, token) = match text.strip_prefix("K10").and_then(|r| r.split_once("::")) {
            Some((h, t)) => (h.to_string(), t),
            None => (String::new(), text),
        };
        let (id, secret) = crate::authn::parse_bootstrap_token(token)?;
        Some(JoinToken { ca_hash: hash, id: id.into(), secret: secret.into() })
    }
}

/// Hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn random_chars(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// Loads the join token of `data_dir`, making one on first use (the CA must exist).
pub fn join_token(data_dir: &Path) -> Result<JoinToken> {
    let path = data_dir.join(JOIN_TOKEN_FILE);
    let ca = fs::read(data_dir.join("tls").join("ca.crt")).context("cannot read the cluster CA")?;
    let ca_hash = sha256_hex(&ca);
    if let Ok(text) = fs::read_to_string(&path)
        && let Some(mut token) = JoinToken::parse(&text)
    {
        token.ca_hash = ca_hash;
        return Ok(token);
    }
    let token = JoinToken { ca_hash, id: random_chars(6), secret: random_chars(16) };
    write_private(&path, &format!("{}\n", token.render()))?;
    Ok(token)
}

fn validity(params: &mut CertificateParams, years: i32) {
    let now = chrono::Utc::now();
    let start = now - chrono::Duration::hours(1);
    params.not_before = rcgen::date_time_ymd(
        chrono::Datelike::year(&start),
        chrono::Datelike::month(&start) as u8,
        chrono::Datelike::day(&start) as u8,
    );
    params.not_after = rcgen::date_time_ymd(
        chrono::Datelike::year(&now) + years,
        chrono::Datelike::month(&now) as u8,
        chrono::Datelike::day(&now).min(28) as u8,
    );
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict permissions of {}", path.display()))?;
    }
    Ok(())
}

fn random_token() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// Loads or creates everything under `data_dir`; `hosts` are extra names and addresses the
/// serving certificate must cover (besides localhost, 127.0.0.1 and the hostname).
pub fn ensure(data_dir: &Path, hosts: &[String]) -> Result<Pki> {
    let dir = data_dir.join("tls");
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca_crt = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    if !ca_crt.exists() || !ca_key.exists() {
        let key = KeyPair::generate().context("cannot generate the CA key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("rudder-ca@{}", chrono::Utc::now().timestamp()));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut params, 10);
        let cert = params.self_signed(&key).context("cannot sign the CA certificate")?;
        write_private(&ca_key, &key.serialize_pem())?;
        fs::write(&ca_crt, cert.pem()).with_context(|| format!("cannot write {}", ca_crt.display()))?;
    }
    let (ca_cert_pem, issuer) = load_issuer(&dir)?;

    // Serving certificate, made anew each start.
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Ok(h) = fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim().to_string();
        if !h.is_empty() {
            names.push(h);
        }
    }
    for h in hosts {
        if !h.is_empty() && !names.contains(h) && h != "0.0.0.0" && h != "::" {
            names.push(h.clone());
        }
    }
    let serving_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(n.clone().try_into()?)),
        })
        .collect::<Result<Vec<_>, rcgen::Error>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kube-apiserver");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, 1);
    let serving = params.signed_by(&serving_key, &issuer).context("cannot sign the serving certificate")?;
    let serving_cert_pem = format!("{}{}", serving.pem(), ca_cert_pem);
    write_private(&dir.join("serving.key"), &serving_key.serialize_pem())?;
    fs::write(dir.join("serving.crt"), &serving_cert_pem)?;

    // Admin client certificate, kept across starts.
    let admin_crt = dir.join("admin.crt");
    let admin_key = dir.join("admin.key");
    if !admin_crt.exists() || !admin_key.exists() {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "admin");
        dn.push(DnType::OrganizationName, "system:masters");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params, 1);
        let cert = params.signed_by(&key, &issuer).context("cannot sign the admin certificate")?;
        write_private(&admin_key, &key.serialize_pem())?;
        fs::write(&admin_crt, cert.pem())?;
    }

    let (kubelet_client_cert_pem, kubelet_client_key_pem) =
        ensure_client_cert(&dir, "kubelet-client", KUBELET_CLIENT_CN, "system:masters", &issuer)?;

    // Static token file: `token,user,uid,"group1,group2"` per line, as upstream's.
    let token_file = data_dir.join("token");
    if !token_file.exists() {
        let token = random_token();
        write_private(&token_file, &format!("{token},admin,admin,\"system:masters\"\n"))?;
    }
    let tokens = fs::read_to_string(&token_file).with_context(|| format!("cannot read {}", token_file.display()))?;
    let admin_token = tokens.lines().find_map(|l| l.split(',').next()).unwrap_or_default().trim().to_string();

    let service_account_key = service_account_key(&dir.join("service-account.key"))?;

    Ok(Pki {
        ca_cert_pem,
        serving_cert_pem,
        serving_key_pem: fs::read_to_string(dir.join("serving.key"))?,
        admin_cert_pem: fs::read_to_string(&admin_crt)?,
        admin_key_pem: fs::read_to_string(&admin_key)?,
        admin_token,
        token_file,
        service_account_key,
        kubelet_client_cert_pem,
        kubelet_client_key_pem,
    })
}

/// Loads the service-account signing key at `path`, creating it first if it is missing.
/// Tokens signed before a restart stay valid because the key is kept.
fn service_account_key(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .context("cannot generate the service-account signing key")?;
        write_private(path, &key.serialize_pem())?;
    }
    let pem = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let key = KeyPair::from_pem(&pem)
        .with_context(|| format!("{} is not a PEM private key (PKCS#8 ECDSA P-256 expected)", path.display()))?;
    Ok(key.serialize_der())
}

/// Writes a kubeconfig for the admin user (client certificate) pointing at `server`.
pub fn write_kubeconfig(path: &Path, server: &str, pki: &Pki) -> Result<()> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: rudder\ncontexts:\n- context:\n    cluster: rudder\n    user: admin\n  name: rudder\ncurrent-context: rudder\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(&pki.ca_cert_pem),
        server,
        b64(&pki.admin_cert_pem),
        b64(&pki.admin_key_pem)
    );
    // Written to a temporary name first so readers never see half a file.
    let tmp = path.with_extension("kubeconfig.tmp");
    write_private(&tmp, &text)?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pem: &str) -> (String, Vec<String>, String, Vec<String>) {
        let der = rustls_pemfile::certs(&mut pem.as_bytes()).next().unwrap().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
        let orgs = cert.subject().iter_organization().map(|o| o.as_str().unwrap().to_string()).collect();
        let issuer = cert.issuer().iter_common_name().next().unwrap().as_str().unwrap().to_string();
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|ext| {
                ext.value
                    .general_names
                    .iter()
                    .map(|n| match n {
                        x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => {
                            format!("{:?}", ip)
                        }
                        other => format!("{other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        (cn, orgs, issuer, sans)
    }

    #[test]
    fn makes_kubelet_client_and_serving_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ensure(dir.path(), &[]).unwrap();
        let (cn, orgs, issuer, _) = parse(&pki.kubelet_client_cert_pem);
        assert_eq!((cn.as_str(), orgs), (KUBELET_CLIENT_CN, vec!["system:masters".to_string()]));
        assert!(issuer.starts_with("rudder-ca@"));
        assert!(dir.path().join("tls/kubelet-client.key").exists());
        // Kept across starts.
        assert_eq!(ensure(dir.path(), &[]).unwrap().kubelet_client_cert_pem, pki.kubelet_client_cert_pem);

        let serving = kubelet_serving_cert(dir.path(), "node-1", &["127.0.0.1".into(), "node-1.local".into()]).unwrap();
        assert_eq!(serving.ca_pem, pki.ca_cert_pem);
        assert!(serving.cert_pem.ends_with(&pki.ca_cert_pem));
        let (cn, orgs, issuer, sans) = parse(&serving.cert_pem);
        assert_eq!((cn.as_str(), orgs), ("system:node:node-1", vec!["system:nodes".to_string()]));
        assert!(issuer.starts_with("rudder-ca@"));
        assert_eq!(sans, vec!["node-1".to_string(), "[127, 0, 0, 1]".to_string(), "node-1.local".to_string()]);
        assert!(KeyPair::from_pem(&serving.key_pem).is_ok());
        assert!(kubelet_serving_cert(dir.path(), "n", &["bäd".into()]).is_err());
        assert!(kubelet_serving_cert(&dir.path().join("missing"), "n", &[]).is_err());
    }
}
