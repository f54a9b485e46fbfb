//! Authentication: client certificates signed by the cluster CA (user from the subject's CN,
//! groups from its O entries), bearer tokens from the static token file, and service-account
//! tokens.
//!
//! Service-account tokens are JWTs this server signed (`jwt`) when a client asked
//! `serviceaccounts/<name>/token` (`handlers/token.rs`). A bearer token is only treated as one
//! when it has three parts and its unverified `iss` is [`ISSUER`]; then, as upstream: the
//! signature, the audiences (one of them must be requested: by default the API server's own,
//! [`API_AUDIENCES`]), `exp`/`nbf`/`iat` with a minute of leeway, and finally the objects the
//! token names must still exist with the same uids ([`BoundObjects`]): the service account,
//! and the secret, pod or node it is bound to. Signature checks are remembered per token, so a
//! client reusing its token pays for the object checks only.

use crate::jwt::{self, SigningKey};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

/// The issuer (`iss`) of service-account tokens, upstream's default.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audiences the API server itself accepts (upstream's default `--api-audiences`).
pub const API_AUDIENCES: &[&str] = &[ISSUER];
/// Clock skew allowed on `exp`, `nbf` and `iat`, and grace after a bound object's deletion
/// (go-jose's default leeway, which upstream uses).
pub const LEEWAY_SECONDS: i64 = 60;

/// `extra` keys of service-account users, as upstream.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// See [`EXTRA_POD_NAME`].
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// See [`EXTRA_POD_NAME`].
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// See [`EXTRA_POD_NAME`].
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// See [`EXTRA_POD_NAME`].
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// How many verified tokens are remembered; the memory is dropped as a whole when full.
const VERIFIED_CACHE_SIZE: usize = 4096;

/// An authenticated user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Its uid, when the authenticator knows one.
    pub uid: String,
    /// Its groups (always including `system:authenticated`).
    pub groups: Vec<String>,
    /// Extra attributes (service accounts: the bound pod and node, the credential id).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl User {
    /// As an authentication.k8s.io `UserInfo`.
    pub fn user_info(&self) -> Value {
        let mut info = json!({"username": self.name, "groups": self.groups});
        if !self.uid.is_empty() {
            info["uid"] = json!(self.uid);
        }
        if !self.extra.is_empty() {
            info["extra"] = json!(self.extra);
        }
        info
    }
}

/// A service-account token whose signature, audiences and times passed.
#[derive(Clone, Debug)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: Arc<ServiceAccountClaims>,
    /// The requested audiences it is valid for.
    pub audiences: Vec<String>,
}

/// A bearer token that was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// Whose it is.
    pub user: User,
    /// The requested audiences it is valid for (empty when none were asked for: a static
    /// token on an ordinary request).
    pub audiences: Vec<String>,
}

/// A reference to an object inside a token's claims.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClaim {
    /// The object's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's uid.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// The private `kubernetes.io` claim. Fields are in upstream's (sorted) order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    #[serde(default)]
    pub namespace: String,
    /// The node: the one a bound pod runs on, or the one the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectClaim>,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
    /// The secret the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectClaim>,
    /// The service account.
    #[serde(default)]
    pub serviceaccount: ObjectClaim,
    /// For kubelet-projected tokens whose lifetime was extended: when they would have expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<i64>,
}

/// The claims of a service-account token. Fields are in upstream's (sorted) order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    /// Audiences (a JSON string is read as one audience).
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Issuer.
    pub iss: String,
    /// Unique id of the token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    /// Who and what the token is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
    /// Not before.
    pub nbf: i64,
    /// Subject: `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// The user name of a service account.
pub fn service_account_user_name(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

impl ServiceAccountClaims {
    /// The user these claims authenticate. Node details are included for node-bound tokens
    /// and for pod-bound tokens that carry them.
    pub fn user(&self) -> User {
        let k = &self.kubernetes;
        let mut extra = BTreeMap::new();
        if let Some(pod) = &k.pod {
            extra.insert(EXTRA_POD_NAME.to_string(), vec![pod.name.clone()]);
            extra.insert(EXTRA_POD_UID.to_string(), vec![pod.uid.clone()]);
        }
        if let Some(node) = k.node.as_ref().filter(|n| !n.name.is_empty()) {
            extra.insert(EXTRA_NODE_NAME.to_string(), vec![node.name.clone()]);
            if !node.uid.is_empty() {
                extra.insert(EXTRA_NODE_UID.to_string(), vec![node.uid.clone()]);
            }
        }
        if !self.jti.is_empty() {
            extra.insert(EXTRA_CREDENTIAL_ID.to_string(), vec![format!("JTI={}", self.jti)]);
        }
        User {
            name: service_account_user_name(&k.namespace, &k.serviceaccount.name),
            uid: k.serviceaccount.uid.clone(),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{}", k.namespace),
                "system:authenticated".into(),
            ],
            extra,
        }
    }
}

/// What the authenticator learns about an object a token names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectState {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.deletionTimestamp`, seconds since the epoch.
    pub deleted_at: Option<i64>,
}

/// Where the authenticator finds the objects a service-account token is bound to.
pub trait BoundObjects: Sync {
    /// The object of `resource` (core/v1 plural: `serviceaccounts`, `secrets`, `pods`,
    /// `nodes`) named `name` in `namespace` (`None` for nodes); `None` when there is none.
    fn lookup(
        &self,
        resource: &'static str,
        namespace: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Option<ObjectState>> + Send;

    /// The stored JSON of Secret `namespace/name` (bootstrap tokens live in
    /// `kube-system/bootstrap-token-<id>`); `None` when there is none.
    fn secret(&self, namespace: &str, name: &str) -> impl Future<Output = Option<Vec<u8>>> + Send {
        let _ = (namespace, name);
        std::future::ready(None)
    }
}

/// Namespace of bootstrap token Secrets.
pub const BOOTSTRAP_NAMESPACE: &str = "kube-system";
/// Group every bootstrap token user is in.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";

/// Splits a bootstrap token `<id>.<secret>` (6 and 16 characters of `[a-z0-9]`).
pub fn parse_bootstrap_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (ok(id, 6) && ok(secret, 16)).then_some((id, secret))
}

/// The user of bootstrap token `id.secret` given its Secret's JSON, as upstream's bootstrap
/// authenticator: type `bootstrap.kubernetes.io/token`, matching `token-id`/`token-secret`,
/// `usage-bootstrap-authentication: "true"`, not expired, not being deleted. The user is
/// `system:bootstrap:<id>` in `system:bootstrappers` plus the token's `auth-extra-groups`.
pub fn bootstrap_user(id: &str, secret: &str, secret_json: &[u8], now: i64) -> Result<User, String> {
    use base64::Engine;
    let obj: Value = serde_json::from_slice(secret_json).map_err(|_| "the bootstrap token secret is unreadable")?;
    if obj["type"] != "bootstrap.kubernetes.io/token" {
        return Err("the secret is not a bootstrap token".into());
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        return Err("the bootstrap token is being deleted".into());
    }
    let field = |k: &str| -> String {
        obj["data"][k]
            .as_str()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    if field("token-id") != id || !constant_time_eq(field("token-secret").as_bytes(), secret.as_bytes()) {
        return Err("the bootstrap token does not match".into());
    }
    if field("usage-bootstrap-authentication") != "true" {
        return Err("the bootstrap token is not for authentication".into());
    }
    let expiration = field("expiration");
    if !expiration.is_empty() {
        match chrono::DateTime::parse_from_rfc3339(&expiration) {
            Ok(t) if t.timestamp() > now => {}
            _ => return Err("the bootstrap token has expired".into()),
        }
    }
    let mut groups = vec![BOOTSTRAPPERS.to_string()];
    for g in field("auth-extra-groups").split(',').map(str::trim).filter(|g| g.starts_with("system:bootstrappers:")) {
        groups.push(g.to_string());
    }
    groups.push("system:authenticated".into());
    Ok(User { name: format!("system:bootstrap:{id}"), uid: String::new(), groups, extra: BTreeMap::new() })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Resolves the user of a request.
#[derive(Default)]
pub struct Authenticator {
    tokens: HashMap<String, User>,
    signing: Option<SigningKey>,
    /// Tokens whose signature was checked, with their claims.
    verified: RwLock<HashMap<Box<str>, Arc<ServiceAccountClaims>>>,
}

impl Authenticator {
    /// Loads the static token file: `token,user,uid[,"group1,group2"]` per line.
    pub fn from_token_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(Self::from_token_text(&text))
    }

    fn from_token_text(text: &str) -> Self {
        let mut tokens = HashMap::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let mut fields = line.splitn(4, ',');
            let (Some(token), Some(user)) = (fields.next(), fields.next()) else { continue };
            let uid = fields.next().unwrap_or("").trim().to_string();
            let mut groups: Vec<String> = fields
                .next()
                .map(|g| {
                    g.trim_matches('"').split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            tokens.insert(
                token.trim().to_string(),
                User { name: user.trim().to_string(), uid, groups, extra: BTreeMap::new() },
            );
        }
        Authenticator { tokens, ..Default::default() }
    }

    /// Adds the key that signs and verifies service-account tokens.
    pub fn with_signing_key(mut self, key: SigningKey) -> Self {
        self.signing = Some(key);
        self
    }

    /// Signs service-account claims into a token; fails when the server has no signing key.
    pub fn issue(&self, claims: &ServiceAccountClaims) -> anyhow::Result<String> {
        let key = self.signing.as_ref().ok_or_else(|| anyhow::anyhow!("no service-account signing key is loaded"))?;
        key.sign(claims)
    }

    /// The user of a static bearer token, if it is known.
    pub fn user_from_token(&self, token: &str) -> Option<User> {
        self.tokens.get(token).cloned()
    }

    /// Authenticates a bearer token: a static token, else a service-account token.
    /// `audiences` are the audiences the caller requires (a `TokenReview`'s); `None` for
    /// ordinary requests, which require [`API_AUDIENCES`]. The error says why a token that
    /// looked like a service-account token was refused.
    pub async fn authenticate_token(
        &self,
        token: &str,
        audiences: Option<&[String]>,
        objects: &impl BoundObjects,
    ) -> Result<Authenticated, String> {
        if let Some(user) = self.tokens.get(token) {
            // Static tokens are valid for the API server's audiences only.
            let audiences = match audiences {
                None => Vec::new(),
                Some(wanted) => {
                    let both = intersect(API_AUDIENCES, wanted);
                    if both.is_empty() {
                        return Err("the token is not known to this server".into());
                    }
                    both
                }
            };
            return Ok(Authenticated { user: user.clone(), audiences });
        }
        let now = chrono::Utc::now().timestamp();
        if let Some((id, secret)) = parse_bootstrap_token(token) {
            let json = objects
                .secret(BOOTSTRAP_NAMESPACE, &format!("bootstrap-token-{id}"))
                .await
                .ok_or_else(|| "the bootstrap token is not known to this server".to_string())?;
            let user = bootstrap_user(id, secret, &json, now)?;
            if audiences.is_some_and(|wanted| intersect(API_AUDIENCES, wanted).is_empty()) {
                return Err("the token is not valid for the requested audiences".into());
            }
            return Ok(Authenticated {
                user,
                audiences: audiences.map(|w| intersect(API_AUDIENCES, w)).unwrap_or_default(),
            });
        }
        let verified = self
            .verify_service_account_token(token, now, audiences)
            .ok_or_else(|| "the token is not known to this server".to_string())??;
        check_bound_objects(&verified.claims, now, objects).await?;
        Ok(Authenticated { user: verified.claims.user(), audiences: verified.audiences })
    }

    /// Everything about a service-account token but its objects: `None` when the token is not
    /// one of this server's (not a JWT with our issuer); otherwise its claims and the requested
    /// audiences it is valid for, or why it is refused.
    pub fn verify_service_account_token(
        &self,
        token: &str,
        now: i64,
        audiences: Option<&[String]>,
    ) -> Option<Result<VerifiedToken, String>> {
        let key = self.signing.as_ref()?;
        let cached = self.verified.read().get(token).cloned();
        let claims = match cached {
            Some(claims) => claims,
            None => {
                if jwt::unverified_issuer(token)? != ISSUER {
                    return None;
                }
                let claims = match verify_signed(key, token) {
                    Ok(claims) => Arc::new(claims),
                    Err(e) => return Some(Err(e)),
                };
                let mut verified = self.verified.write();
                if verified.len() >= VERIFIED_CACHE_SIZE {
                    verified.clear();
                }
                verified.insert(token.into(), claims.clone());
                claims
            }
        };
        Some(check_claims(&claims, now, audiences).map(|audiences| VerifiedToken { claims, audiences }))
    }

    /// The user named by a (CA-verified) client certificate.
    pub fn user_from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let mut groups: Vec<String> =
            subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
        groups.push("system:authenticated".into());
        Some(User { name, groups, ..Default::default() })
    }
}

/// Verifies the signature and reads the claims.
fn verify_signed(key: &SigningKey, token: &str) -> Result<ServiceAccountClaims, String> {
    let payload = key.verify(token).map_err(|e| e.to_string())?;
    let claims: ServiceAccountClaims =
        serde_json::from_slice(&payload).map_err(|e| format!("service account token claims could not be read: {e}"))?;
    // The issuer was peeked at before the signature was checked; check it again.
    if claims.iss != ISSUER {
        return Err(format!("token issuer {:?} is invalid", claims.iss));
    }
    Ok(claims)
}

/// Audiences, then validity in time; returns the requested audiences the token carries.
fn check_claims(claims: &ServiceAccountClaims, now: i64, audiences: Option<&[String]>) -> Result<Vec<String>, String> {
    // A token without audiences is for the API server (upstream's legacy tokens).
    let token_auds: Vec<String> =
        if claims.aud.is_empty() { API_AUDIENCES.iter().map(|s| s.to_string()).collect() } else { claims.aud.clone() };
    let requested: Vec<String> = match audiences {
        Some(a) => a.to_vec(),
        None => API_AUDIENCES.iter().map(|s| s.to_string()).collect(),
    };
    let both = intersect(&token_auds, &requested);
    if both.is_empty() {
        return Err(format!("token audiences {token_auds:?} is invalid for the target audiences {requested:?}"));
    }
    if now + LEEWAY_SECONDS < claims.nbf {
        return Err("service account token is not valid yet".into());
    }
    if now - LEEWAY_SECONDS > claims.exp {
        return Err("service account token has expired".into());
    }
    if now + LEEWAY_SECONDS < claims.iat {
        return Err("service account token is issued in the future".into());
    }
    Ok(both)
}

/// The members of `a` that are also in `b`, in `a`'s order.
fn intersect<A: AsRef<str>, B: AsRef<str>>(a: &[A], b: &[B]) -> Vec<String> {
    a.iter().map(AsRef::as_ref).filter(|x| b.iter().any(|y| y.as_ref() == *x)).map(str::to_string).collect()
}

/// The objects a token names must exist, with the uids it names, and not have been deleted
/// more than [`LEEWAY_SECONDS`] ago. Messages as upstream's.
async fn check_bound_objects(
    claims: &ServiceAccountClaims,
    now: i64,
    objects: &impl BoundObjects,
) -> Result<(), String> {
    let k = &claims.kubernetes;
    let ns = k.namespace.as_str();
    let gone = |state: &ObjectState| state.deleted_at.is_some_and(|t| t < now - LEEWAY_SECONDS);
    let sa = &k.serviceaccount;
    let Some(found) = objects.lookup("serviceaccounts", Some(ns), &sa.name).await else {
        return Err(format!("serviceaccounts {:?} not found", sa.name));
    };
    if found.uid != sa.uid {
        return Err(format!("service account UID ({}) does not match claim ({})", found.uid, sa.uid));
    }
    if gone(&found) {
        return Err(format!("service account {ns}/{} has been deleted", sa.name));
    }
    let invalidated = || "service account token has been invalidated".to_string();
    if let Some(secret) = &k.secret {
        let found = objects.lookup("secrets", Some(ns), &secret.name).await.ok_or_else(invalidated)?;
        if found.uid != secret.uid {
            return Err(format!(
                "secret UID ({}) does not match service account secret ref claim ({})",
                found.uid, secret.uid
            ));
        }
        if gone(&found) {
            return Err(invalidated());
        }
    }
    if let Some(pod) = &k.pod {
        let found = objects.lookup("pods", Some(ns), &pod.name).await.ok_or_else(invalidated)?;
        if found.uid != pod.uid {
            return Err(format!("pod UID ({}) does not match service account pod ref claim ({})", found.uid, pod.uid));
        }
        if gone(&found) {
            return Err(invalidated());
        }
    } else if let Some(node) = &k.node {
        // Node-bound (a pod-bound token's node is informational only).
        let found = objects.lookup("nodes", None, &node.name).await.ok_or_else(invalidated)?;
        if found.uid != node.uid {
            return Err(format!(
                "node UID ({}) does not match service account node ref claim ({})",
                found.uid, node.uid
            ));
        }
        if gone(&found) {
            return Err(invalidated());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn reads_static_tokens() {
        let a = Authenticator::from_token_text("abc,admin,1,\"system:masters,ops\"\n# comment\nxyz,bob,2\n");
        let admin = a.user_from_token("abc").unwrap();
        assert_eq!(admin.name, "admin");
        assert_eq!(admin.uid, "1");
        assert_eq!(admin.groups, vec!["system:masters", "ops", "system:authenticated"]);
        assert_eq!(a.user_from_token("xyz").unwrap().groups, vec!["system:authenticated"]);
        assert!(a.user_from_token("nope").is_none());
    }

    /// Objects in a map: `(resource, namespace, name)` → state.
    #[derive(Default)]
    struct Objects(HashMap<(String, String, String), ObjectState>);

    impl Objects {
        fn with(mut self, resource: &str, ns: &str, name: &str, uid: &str, deleted_at: Option<i64>) -> Self {
            self.0.insert((resource.into(), ns.into(), name.into()), ObjectState { uid: uid.into(), deleted_at });
            self
        }
    }

    impl BoundObjects for Objects {
        fn lookup(
            &self,
            resource: &'static str,
            namespace: Option<&str>,
            name: &str,
        ) -> impl Future<Output = Option<ObjectState>> + Send {
            let found = self.0.get(&(resource.to_string(), namespace.unwrap_or("").to_string(), name.to_string()));
            std::future::ready(found.cloned())
        }
    }

    #[test]
    fn bootstrap_tokens_authenticate_as_bootstrappers() {
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = |expiration: &str, usage: &str| {
            let mut data = json!({
                "token-id": b("abcdef"), "token-secret": b("0123456789abcdef"),
                "usage-bootstrap-authentication": b(usage),
                "auth-extra-groups": b("system:bootstrappers:rudder:nodes,not-a-bootstrap-group"),
            });
            if !expiration.is_empty() {
                data["expiration"] = json!(b(expiration));
            }
            serde_json::to_vec(&json!({"type": "bootstrap.kubernetes.io/token", "data": data})).unwrap()
        };
        assert_eq!(parse_bootstrap_token("abcdef.0123456789abcdef"), Some(("abcdef", "0123456789abcdef")));
        assert_eq!(parse_bootstrap_token("abcdef.short"), None);
        assert_eq!(parse_bootstrap_token("ABCDEF.0123456789abcdef"), None);
        let user = bootstrap_user("abcdef", "0123456789abcdef", &secret("", "true"), 0).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(user.groups, ["system:bootstrappers", "system:bootstrappers:rudder:nodes", "system:authenticated"]);
        assert!(bootstrap_user("abcdef", "0123456789abcdeX", &secret("", "true"), 0).is_err());
        assert!(bootstrap_user("abcdef", "0123456789abcdef", &secret("", "false"), 0).is_err());
        let expired = secret("2020-01-01T00:00:00Z", "true");
        assert!(bootstrap_user("abcdef", "0123456789abcdef", &expired, 1_700_000_000).is_err());
    }

    fn authenticator() -> Authenticator {
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        Authenticator::from_token_text("static-token,admin,admin,\"system:masters\"\n").with_signing_key(key)
    }

    fn claims(now: i64) -> ServiceAccountClaims {
        ServiceAccountClaims {
            aud: vec![ISSUER.into()],
            exp: now + 3600,
            iat: now,
            iss: ISSUER.into(),
            jti: "0f1e".into(),
            kubernetes: KubernetesClaims {
                namespace: "default".into(),
                serviceaccount: ObjectClaim { name: "robot".into(), uid: "sa-uid".into() },
                ..Default::default()
            },
            nbf: now,
            sub: service_account_user_name("default", "robot"),
        }
    }

    fn robot() -> Objects {
        Objects::default().with("serviceaccounts", "default", "robot", "sa-uid", None)
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn service_account_tokens_authenticate() {
        let a = authenticator();
        let now = chrono::Utc::now().timestamp();
        let token = a.issue(&claims(now)).unwrap();
        let got = block_on(a.authenticate_token(&token, None, &robot())).unwrap();
        assert_eq!(got.user.name, "system:serviceaccount:default:robot");
        assert_eq!(got.user.uid, "sa-uid");
        assert_eq!(
            got.user.groups,
            vec!["system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]
        );
        assert_eq!(got.user.extra[EXTRA_CREDENTIAL_ID], vec!["JTI=0f1e"]);
        assert_eq!(got.audiences, vec![ISSUER]);
        // Again, from the verified-token memory.
        assert_eq!(block_on(a.authenticate_token(&token, None, &robot())).unwrap(), got);

        // The payload reads as upstream's: sorted keys, audiences as a list.
        let payload = token.split('.').nth(1).unwrap();
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(text.starts_with(&format!(r#"{{"aud":["{ISSUER}"],"exp":"#)), "{text}");
        assert!(
            text.contains(
                r#""kubernetes.io":{"namespace":"default","serviceaccount":{"name":"robot","uid":"sa-uid"}}"#
            ),
            "{text}"
        );

        // Static tokens still work, and take precedence.
        let admin = block_on(a.authenticate_token("static-token", None, &Objects::default())).unwrap();
        assert_eq!(admin.user.name, "admin");
        assert!(admin.audiences.is_empty());
        assert!(block_on(a.authenticate_token("unknown", None, &robot())).is_err());
    }

    #[test]
    fn expiry_and_not_before_allow_a_minute_of_skew() {
        let a = authenticator();
        let now = 1_700_000_000;
        let mut c = claims(now);
        c.exp = now - 30;
        let token = a.issue(&c).unwrap();
        assert!(a.verify_service_account_token(&token, now, None).unwrap().is_ok(), "within the leeway");
        let err = a.verify_service_account_token(&token, now + 31, None).unwrap().unwrap_err();
        assert_eq!(err, "service account token has expired");

        let mut c = claims(now);
        c.nbf = now + 120;
        let token = a.issue(&c).unwrap();
        let err = a.verify_service_account_token(&token, now, None).unwrap().unwrap_err();
        assert_eq!(err, "service account token is not valid yet");
        assert!(a.verify_service_account_token(&token, now + 60, None).unwrap().is_ok());

        let mut c = claims(now);
        c.iat = now + 3000;
        let token = a.issue(&c).unwrap();
        let err = a.verify_service_account_token(&token, now, None).unwrap().unwrap_err();
        assert_eq!(err, "service account token is issued in the future");
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let a = authenticator();
        let now = chrono::Utc::now().timestamp();
        let token = a.issue(&claims(now)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // Another subject under the original signature.
        let mut forged = claims(now);
        forged.kubernetes.namespace = "kube-system".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        let err = block_on(a.authenticate_token(&tampered, None, &robot())).unwrap_err();
        assert_eq!(err, "invalid signature");

        // Signed by someone else's key.
        let other = authenticator().issue(&claims(now)).unwrap();
        assert!(block_on(a.authenticate_token(&other, None, &robot())).is_err());

        // Another issuer is not ours to verify.
        let mut c = claims(now);
        c.iss = "https://issuer.example".into();
        let token = a.issue(&c).unwrap();
        assert!(a.verify_service_account_token(&token, now, None).is_none());
        assert!(block_on(a.authenticate_token(&token, None, &robot())).is_err());

        // Without a signing key no JWT is accepted.
        let keyless = Authenticator::from_token_text("");
        assert!(keyless.verify_service_account_token(&parts.join("."), now, None).is_none());
    }

    #[test]
    fn audiences_must_meet() {
        let a = authenticator();
        let now = chrono::Utc::now().timestamp();
        let mut c = claims(now);
        c.aud = vec!["vault".into(), "other".into()];
        let token = a.issue(&c).unwrap();
        let err = a.verify_service_account_token(&token, now, None).unwrap().unwrap_err();
        assert!(err.contains("is invalid for the target audiences"), "{err}");
        let wanted = vec!["other".to_string(), "more".to_string()];
        let verified = a.verify_service_account_token(&token, now, Some(&wanted)).unwrap().unwrap();
        assert_eq!(verified.audiences, vec!["other"]);

        // Static tokens are for the API server only.
        let vault = vec!["vault".to_string()];
        assert!(block_on(a.authenticate_token("static-token", Some(&vault), &robot())).is_err());
        let api = vec![ISSUER.to_string()];
        let ok = block_on(a.authenticate_token("static-token", Some(&api), &robot())).unwrap();
        assert_eq!(ok.audiences, api);
    }

    #[test]
    fn bound_objects_must_still_exist() {
        let a = authenticator();
        let now = chrono::Utc::now().timestamp();
        let token = a.issue(&claims(now)).unwrap();
        let err = block_on(a.authenticate_token(&token, None, &Objects::default())).unwrap_err();
        assert_eq!(err, r#"serviceaccounts "robot" not found"#);
        let recreated = Objects::default().with("serviceaccounts", "default", "robot", "new-uid", None);
        let err = block_on(a.authenticate_token(&token, None, &recreated)).unwrap_err();
        assert_eq!(err, "service account UID (new-uid) does not match claim (sa-uid)");
        let deleting = Objects::default().with("serviceaccounts", "default", "robot", "sa-uid", Some(now - 61));
        assert!(block_on(a.authenticate_token(&token, None, &deleting)).is_err());
        let just_deleting = Objects::default().with("serviceaccounts", "default", "robot", "sa-uid", Some(now));
        assert!(block_on(a.authenticate_token(&token, None, &just_deleting)).is_ok());

        // Pod-bound, with the pod's node.
        let mut c = claims(now);
        c.kubernetes.pod = Some(ObjectClaim { name: "web".into(), uid: "pod-uid".into() });
        c.kubernetes.node = Some(ObjectClaim { name: "n1".into(), uid: "node-uid".into() });
        let token = a.issue(&c).unwrap();
        let err = block_on(a.authenticate_token(&token, None, &robot())).unwrap_err();
        assert_eq!(err, "service account token has been invalidated");
        // The pod's node need not exist.
        let with_pod = robot().with("pods", "default", "web", "pod-uid", None);
        let user = block_on(a.authenticate_token(&token, None, &with_pod)).unwrap().user;
        assert_eq!(user.extra[EXTRA_POD_NAME], vec!["web"]);
        assert_eq!(user.extra[EXTRA_POD_UID], vec!["pod-uid"]);
        assert_eq!(user.extra[EXTRA_NODE_NAME], vec!["n1"]);
        assert_eq!(user.extra[EXTRA_NODE_UID], vec!["node-uid"]);

        // Secret-bound.
        let mut c = claims(now);
        c.kubernetes.secret = Some(ObjectClaim { name: "s".into(), uid: "secret-uid".into() });
        let token = a.issue(&c).unwrap();
        assert!(block_on(a.authenticate_token(&token, None, &robot())).is_err());
        let other_secret = robot().with("secrets", "default", "s", "other", None);
        assert!(block_on(a.authenticate_token(&token, None, &other_secret)).is_err());
        let with_secret = robot().with("secrets", "default", "s", "secret-uid", None);
        assert!(block_on(a.authenticate_token(&token, None, &with_secret)).is_ok());

        // Node-bound: the node must exist.
        let mut c = claims(now);
        c.kubernetes.node = Some(ObjectClaim { name: "n1".into(), uid: "node-uid".into() });
        let token = a.issue(&c).unwrap();
        assert!(block_on(a.authenticate_token(&token, None, &robot())).is_err());
        let with_node = robot().with("nodes", "", "n1", "node-uid", None);
        let user = block_on(a.authenticate_token(&token, None, &with_node)).unwrap().user;
        assert_eq!(user.extra[EXTRA_NODE_NAME], vec!["n1"]);
    }

    #[test]
    fn audience_may_be_a_single_string() {
        let c: ServiceAccountClaims = serde_json::from_value(json!({
            "aud": "x", "exp": 2, "iat": 1, "nbf": 1, "iss": ISSUER, "sub": "s",
            "kubernetes.io": {"namespace": "n", "serviceaccount": {"name": "a", "uid": "u"}},
        }))
        .unwrap();
        assert_eq!(c.aud, vec!["x"]);
    }
}
