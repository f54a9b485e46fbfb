//! Compact JSON Web Tokens (`header.payload.signature`, each part base64url without padding)
//! signed with ECDSA P-256 and SHA-256 (`ES256`), the form of the service-account tokens the
//! server issues.
//!
//! Key type: [`SigningKey`], a P-256 key pair read from PKCS#8 that both signs and verifies.
//! Its key id (`kid` header) is derived as upstream derives it: the SHA-256 of the DER
//! `SubjectPublicKeyInfo`, base64url-encoded, so a JWKS document can later publish the key
//! under the same id.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde::Serialize;

/// The only algorithm this module signs and accepts.
pub const ALGORITHM: &str = "ES256";

/// Tokens longer than this are not looked at (upstream's request headers are far smaller).
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1, then the
/// BIT STRING header) in front of the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts with JSON header and payload.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// The header names another algorithm (including `none`).
    #[error("the token's signing algorithm {0:?} is not supported")]
    Algorithm(String),
    /// The header names a key this server does not have.
    #[error("invalid signature, no keys found")]
    UnknownKey,
    /// The signature does not match.
    #[error("invalid signature")]
    Signature,
}

/// A P-256 key pair that signs and verifies tokens.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    key_id: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key pair, as PKCS#8 DER.
    pub fn generate_pkcs8() -> anyhow::Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
        Ok(doc.as_ref().to_vec())
    }

    /// Reads a PKCS#8 DER P-256 private key.
    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| anyhow::anyhow!("not a PKCS#8 ECDSA P-256 private key: {e}"))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(SigningKey { pair, key_id, rng })
    }

    /// The key id written into the `kid` header.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Signs `claims` (serialized as the JSON payload) into a compact token.
    pub fn sign<T: Serialize>(&self, claims: &T) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct Header<'a> {
            alg: &'a str,
            kid: &'a str,
        }
        let header = serde_json::to_vec(&Header { alg: ALGORITHM, kid: &self.key_id })?;
        let payload = serde_json::to_vec(claims)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let sig = self.pair.sign(&self.rng, token.as_bytes()).map_err(|_| anyhow::anyhow!("cannot sign the token"))?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(sig.as_ref(), &mut token);
        Ok(token)
    }

    /// Checks the header and the signature and returns the payload (JSON, not yet parsed).
    pub fn verify(&self, token: &str) -> Result<Vec<u8>, JwtError> {
        let (header, payload, sig) = split(token).ok_or(JwtError::Malformed)?;
        let header: serde_json::Value = decode_json(header).ok_or(JwtError::Malformed)?;
        let alg = header.get("alg").and_then(serde_json::Value::as_str).unwrap_or("");
        if alg != ALGORITHM {
            return Err(JwtError::Algorithm(alg.to_string()));
        }
        match header.get("kid") {
            None => {}
            Some(serde_json::Value::String(kid)) if *kid == self.key_id => {}
            Some(_) => return Err(JwtError::UnknownKey),
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| JwtError::Malformed)?;
        let signed = &token[..header_and_payload_len(token)];
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signed.as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)?;
        URL_SAFE_NO_PAD.decode(payload).map_err(|_| JwtError::Malformed)
    }
}

/// The three parts of a compact token, if it has exactly three non-empty-header parts and is
/// not absurdly long.
fn split(token: &str) -> Option<(&str, &str, &str)> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (header, payload, sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || header.is_empty() {
        return None;
    }
    Some((header, payload, sig))
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// The `iss` claim of a token, read without checking anything: only to decide whether a
/// token is this server's to verify (as upstream's authenticator does before verifying).
pub fn unverified_issuer(token: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Issuer {
        iss: String,
    }
    if token.trim_start().starts_with('{') {
        return None;
    }
    let (_, payload, _) = split(token)?;
    decode_json::<Issuer>(payload).map(|p| p.iss)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    fn parts(token: &str) -> Vec<String> {
        token.split('.').map(str::to_string).collect()
    }

    #[test]
    fn signs_and_verifies() {
        let k = key();
        let token = k.sign(&json!({"iss": "me", "sub": "you"})).unwrap();
        let p = parts(&token);
        assert_eq!(p.len(), 3);
        assert!(!token.contains('='), "no padding: {token}");
        let header: Value = decode_json(&p[0]).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": k.key_id()}));
        let payload: Value = serde_json::from_slice(&k.verify(&token).unwrap()).unwrap();
        assert_eq!(payload, json!({"iss": "me", "sub": "you"}));
        assert_eq!(unverified_issuer(&token).as_deref(), Some("me"));
        // The fixed-size signature is 64 bytes.
        assert_eq!(URL_SAFE_NO_PAD.decode(&p[2]).unwrap().len(), 64);
    }

    #[test]
    fn key_id_is_stable_for_a_key() {
        let der = SigningKey::generate_pkcs8().unwrap();
        let a = SigningKey::from_pkcs8(&der).unwrap();
        let b = SigningKey::from_pkcs8(&der).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert_eq!(a.key_id().len(), 43, "SHA-256, base64url without padding");
        assert_ne!(a.key_id(), key().key_id());
        // A token signed before is verified by the reloaded key.
        let token = a.sign(&json!({"n": 1})).unwrap();
        assert!(b.verify(&token).is_ok());
    }

    #[test]
    fn refuses_tampering() {
        let k = key();
        let token = k.sign(&json!({"sub": "system:serviceaccount:default:robot"})).unwrap();
        let p = parts(&token);

        // Another payload under the same signature.
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"system:serviceaccount:kube-system:admin"}"#);
        assert_eq!(k.verify(&format!("{}.{forged}.{}", p[0], p[2])), Err(JwtError::Signature));

        // One flipped signature byte.
        let mut sig = URL_SAFE_NO_PAD.decode(&p[2]).unwrap();
        sig[10] ^= 1;
        let bad = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(k.verify(&bad), Err(JwtError::Signature));

        // Signed by another key with the same header.
        let other = key().sign(&json!({"sub": "x"})).unwrap();
        let q = parts(&other);
        assert_eq!(k.verify(&format!("{}.{}.{}", p[0], q[1], q[2])), Err(JwtError::Signature));
        // ... or with its own key id.
        assert_eq!(k.verify(&other), Err(JwtError::UnknownKey));

        // `alg: none` and other algorithms.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(k.verify(&format!("{none}.{}.", p[1])), Err(JwtError::Algorithm("none".into())));
        let hs = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        assert_eq!(k.verify(&format!("{hs}.{}.{}", p[1], p[2])), Err(JwtError::Algorithm("HS256".into())));

        // Structure.
        for bad in ["", "abc", "a.b", "a.b.c.d", ".x.y", "!!.e30.xx", &format!("{}.{}", p[0], p[1])] {
            assert!(k.verify(bad).is_err(), "{bad:?} is refused");
        }
        assert!(k.verify(&format!("{}.{}.{}=", p[0], p[1], p[2])).is_err(), "padding is refused");
    }

    #[test]
    fn issuer_peek_ignores_non_jwts() {
        assert_eq!(unverified_issuer("abcdef0123456789"), None);
        assert_eq!(unverified_issuer(r#"{"iss":"x"}.e30.x"#), None);
        assert_eq!(unverified_issuer("e30.e30.x"), None, "no iss");
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"someone"}"#);
        assert_eq!(unverified_issuer(&format!("e30.{payload}.sig")).as_deref(), Some("someone"));
        assert_eq!(unverified_issuer(&format!("e30.{payload}.sig.more")), None);
        assert_eq!(unverified_issuer(&format!("e30.{}.sig", "A".repeat(MAX_TOKEN_LEN))), None);
    }

    #[test]
    fn rejects_other_curves_and_garbage_keys() {
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
        let p384 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        assert!(SigningKey::from_pkcs8(p384.as_ref()).is_err());
    }
}
