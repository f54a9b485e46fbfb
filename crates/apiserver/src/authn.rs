//! Authentication: client certificates signed by the cluster CA (user from the subject's CN,
//! groups from its O entries) and bearer tokens from the static token file.

use std::collections::HashMap;
use std::path::Path;

/// An authenticated user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// Its groups (always including `system:authenticated`).
    pub groups: Vec<String>,
}

/// Resolves the user of a request.
#[derive(Default)]
pub struct Authenticator {
    tokens: HashMap<String, User>,
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
            let _uid = fields.next();
            let mut groups: Vec<String> = fields
                .next()
                .map(|g| {
                    g.trim_matches('"').split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_default();
            groups.push("system:authenticated".into());
            tokens.insert(token.trim().to_string(), User { name: user.trim().to_string(), groups });
        }
        Authenticator { tokens }
    }

    /// The user of a bearer token, if it is known.
    pub fn user_from_token(&self, token: &str) -> Option<User> {
        self.tokens.get(token).cloned()
    }

    /// The user named by a (CA-verified) client certificate.
    pub fn user_from_certificate(der: &[u8]) -> Option<User> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let mut groups: Vec<String> =
            subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
        groups.push("system:authenticated".into());
        Some(User { name, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_static_tokens() {
        let a = Authenticator::from_token_text("abc,admin,1,\"system:masters,ops\"\n# comment\nxyz,bob,2\n");
        let admin = a.user_from_token("abc").unwrap();
        assert_eq!(admin.name, "admin");
        assert_eq!(admin.groups, vec!["system:masters", "ops", "system:authenticated"]);
        assert_eq!(a.user_from_token("xyz").unwrap().groups, vec!["system:authenticated"]);
        assert!(a.user_from_token("nope").is_none());
    }
}
