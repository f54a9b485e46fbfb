//! Label and field selectors, as the API server applies them to list and watch requests.
//!
//! Key items:
//! - [`LabelSelector`]: the `labelSelector` query syntax (`a=b`, `a!=b`, `a in (x,y)`,
//!   `a notin (x)`, `a`, `!a`, `a>1`, `a<1`), also built from a `metav1.LabelSelector`
//!   with [`LabelSelector::from_k8s`]. Parse errors carry upstream's wording.
//! - [`FieldSelector`]: the `fieldSelector` query syntax (`a=b`, `a==b`, `a!=b`, with `\,`,
//!   `\=` and `\\` escapes in values).
//! - [`supported_field_labels`], [`check_field_labels`], [`convert_field_labels`] and
//!   [`field_set`]: which field labels each resource accepts, upstream's rejection message
//!   for the others, and the values of those fields read from a stored object.
//!
//! Objects are plain `serde_json::Value`s; nothing here decodes them into typed structs.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

// ---------------------------------------------------------------------------------------
// Small validators (label keys and values), worded as upstream's apimachinery of v1.33.
// ---------------------------------------------------------------------------------------

/// Problems with `key` as a label key (a qualified name).
fn label_key_errors(key: &str) -> Vec<String> {
    crate::validation::names::is_qualified_name(key)
}

/// Problems with `value` as a label value (empty, or a name part of at most 63 characters).
fn label_value_errors(value: &str) -> Vec<String> {
    crate::validation::names::is_valid_label_value(value)
}

/// A string quoted the way Go's `%q` prints it.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string list printed the way Go's `%#v` prints a `[]string` (`None` is a nil slice).
fn go_string_slice(values: Option<&[String]>) -> String {
    match values {
        None => "[]string(nil)".to_string(),
        Some(v) => format!("[]string{{{}}}", v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(", ")),
    }
}

/// `<path>: Invalid value: <value>: <detail>`, as a field error prints.
fn invalid(path: &str, shown_value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {shown_value}: {detail}")
}

/// Joins messages the way an aggregate error prints: one stays bare, several are bracketed.
/// Repeated messages are shown once.
fn aggregate(messages: Vec<String>) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for m in messages {
        if !seen.contains(&m) {
            seen.push(m);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

// ---------------------------------------------------------------------------------------
// Label selectors
// ---------------------------------------------------------------------------------------

/// How a label requirement compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)`: the label is set to one of the values.
    In,
    /// `key notin (a,b)`: the label is unset or set to none of the values.
    NotIn,
    /// `key=value`.
    Equals,
    /// `key==value` (same meaning as `=`).
    DoubleEquals,
    /// `key!=value`: the label is unset or set to something else.
    NotEquals,
    /// `key`: the label is set.
    Exists,
    /// `!key`: the label is unset.
    DoesNotExist,
    /// `key>n`: the label is an integer greater than `n`.
    GreaterThan,
    /// `key<n`: the label is an integer less than `n`.
    LessThan,
}

impl Operator {
    /// The name upstream's `selection.Operator` uses (`in`, `notin`, `=`, `==`, `!=`,
    /// `exists`, `!`, `gt`, `lt`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "in",
            Operator::NotIn => "notin",
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::Exists => "exists",
            Operator::DoesNotExist => "!",
            Operator::GreaterThan => "gt",
            Operator::LessThan => "lt",
        }
    }
}

/// One condition of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement after checking it as upstream's `NewRequirement` does: the key
    /// must be a qualified name, the number of values must suit the operator, `gt`/`lt`
    /// values must be integers and every value must be a valid label value.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
        Self::checked(key, operator, Some(values))
    }

    /// `values` is `None` for a nil list (it only changes how an error prints the list).
    fn checked(key: &str, operator: Operator, values: Option<Vec<String>>) -> Result<Requirement, String> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", &go_quote(key), &key_errs.join("; ")));
        }
        let shown = go_string_slice(values.as_deref());
        let values = values.unwrap_or_default();
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid("values", &shown, "for 'in', 'notin' operators, values set can't be empty"));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid("values", &shown, "exact-match compatibility requires one single value"));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid("values", &shown, "values set must be empty for exists and does not exist"));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid("values", &shown, "for 'Gt', 'Lt' operators, exactly one value is required"));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            &go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(invalid(&format!("values[{i}][{key}]"), &go_quote(v), &value_errs.join("; ")));
            }
        }
        match aggregate(errs) {
            Some(message) => Err(message),
            None => Ok(Requirement { key: key.to_string(), operator, values }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values (empty for `Exists`/`DoesNotExist`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.iter().any(|x| x == v)
    }

    fn matches_with<'a>(&self, get: &impl Fn(&str) -> Option<&'a str>) -> bool {
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                get(&self.key).is_some_and(|v| self.has_value(v))
            }
            Operator::NotIn | Operator::NotEquals => get(&self.key).is_none_or(|v| !self.has_value(v)),
            Operator::Exists => get(&self.key).is_some(),
            Operator::DoesNotExist => get(&self.key).is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(have) = get(&self.key).and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let [want] = self.values.as_slice() else {
                    return false;
                };
                let Ok(want) = want.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan { have > want } else { have < want }
            }
        }
    }

    /// Whether a set of labels satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(&|k: &str| labels.get(k).map(String::as_str))
    }
}

impl fmt::Display for Requirement {
    /// The canonical form: `!k`, `k`, `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
    /// `k>n`, `k<n`; several values are printed sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, open, close) = match self.operator {
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
            Operator::Equals => ("=", "", ""),
            Operator::DoubleEquals => ("==", "", ""),
            Operator::NotEquals => ("!=", "", ""),
            Operator::In => (" in ", "(", ")"),
            Operator::NotIn => (" notin ", "(", ")"),
            Operator::GreaterThan => (">", "", ""),
            Operator::LessThan => ("<", "", ""),
        };
        let mut values: Vec<&str> = self.values.iter().map(String::as_str).collect();
        values.sort_unstable();
        write!(f, "{op}{open}{}{close}", values.join(","))
    }
}

/// A parsed label selector: every requirement must hold (logical AND). Empty matches
/// everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    /// Parses the `labelSelector` query syntax, e.g. `app=web,tier in (a,b),!legacy`.
    ///
    /// Errors read as upstream's, e.g. `unable to parse requirement: ...` or
    /// `found 'x', expected: ',' or 'end of string'`. Requirements are kept sorted by key.
    pub fn parse(s: &str) -> Result<LabelSelector, String> {
        let mut requirements = Parser::new(s).parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Builds a selector from a `metav1.LabelSelector` (`matchLabels` and `matchExpressions`
    /// with `In`, `NotIn`, `Exists`, `DoesNotExist`). An empty one matches everything.
    pub fn from_k8s(
        sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<LabelSelector, String> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::checked(k, Operator::Equals, Some(vec![v.clone()]))?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{} is not a valid label selector operator", go_quote(other))),
            };
            let values = expr.values.clone().filter(|v| !v.is_empty());
            requirements.push(Requirement::checked(&expr.key, operator, values)?);
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Whether the selector places no condition.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| labels.get(k).map(String::as_str);
        self.requirements.iter().all(|r| r.matches_with(&get))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement (non-string label
    /// values are ignored).
    pub fn matches_value(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|m| m.get(k)).and_then(Value::as_str);
        self.requirements.iter().all(|r| r.matches_with(&get))
    }

    /// If the selector pins `key` to one value (`=`, `==`, or `in` with one value), that
    /// value.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// Requirements in their canonical form, joined with `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for LabelSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        LabelSelector::parse(s)
    }
}

/// Token kinds of the label selector syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    Bang,
    DoubleEquals,
    Equals,
    Greater,
    Ident,
    In,
    Less,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::Bang,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::Greater,
        "in" => Tok::In,
        "<" => Tok::Less,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_symbol(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits the selector into tokens; the last one is always `End`.
fn tokenize(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_blank(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() {
            out.push((Tok::End, String::new()));
            return out;
        }
        let start = pos;
        if is_symbol(b[pos]) {
            // Grow the operator while the longer text is still an operator.
            let mut best: Option<(Tok, usize)> = None;
            while pos < b.len() && is_symbol(b[pos]) {
                match keyword(&s[start..=pos]) {
                    Some(t) => {
                        best = Some((t, pos + 1));
                        pos += 1;
                    }
                    None if best.is_some() => break,
                    None => pos += 1,
                }
            }
            match best {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, s[start..end].to_string()));
                }
                None => out.push((Tok::Error, format!("error expected: keyword found '{}'", &s[start..pos]))),
            }
        } else {
            while pos < b.len() && !is_symbol(b[pos]) && !is_blank(b[pos]) {
                pos += 1;
            }
            let word = &s[start..pos];
            out.push((keyword(word).unwrap_or(Tok::Ident), word.to_string()));
        }
    }
}

/// Whether `in`/`notin` are read as words (in value position) or as operators.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn new(s: &str) -> Parser {
        Parser { items: tokenize(s), pos: 0 }
    }

    fn item(&self, at: usize, ctx: Ctx) -> (Tok, String) {
        let (t, lit) = self.items[at.min(self.items.len() - 1)].clone();
        let t = match (ctx, t) {
            (Ctx::Values, Tok::In | Tok::NotIn) => Tok::Ident,
            _ => t,
        };
        (t, lit)
    }

    fn peek(&self, ctx: Ctx) -> (Tok, String) {
        self.item(self.pos, ctx)
    }

    fn next(&mut self, ctx: Ctx) -> (Tok, String) {
        let it = self.item(self.pos, ctx);
        self.pos += 1;
        it
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut out = Vec::new();
        loop {
            let (t, lit) = self.peek(Ctx::Values);
            match t {
                Tok::Ident | Tok::Bang => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    out.push(r);
                    let (t, lit) = self.next(Ctx::Values);
                    match t {
                        Tok::End => return Ok(out),
                        Tok::Comma => {
                            let (t2, lit2) = self.peek(Ctx::Values);
                            if t2 != Tok::Ident && t2 != Tok::Bang {
                                return Err(format!("found '{lit2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{lit}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(out),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.key_and_inferred_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = op {
            return Requirement::checked(&key, op, Some(Vec::new()));
        }
        let op = self.operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        Requirement::checked(&key, op, Some(values))
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut t, mut lit) = self.next(Ctx::Values);
        if t == Tok::Bang {
            op = Some(Operator::DoesNotExist);
            (t, lit) = self.next(Ctx::Values);
        }
        if t != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errs = label_key_errors(&lit);
        if !key_errs.is_empty() {
            return Err(invalid("<nil>", &go_quote(&lit), &key_errs.join("; ")));
        }
        let (next, _) = self.peek(Ctx::Values);
        if (next == Tok::End || next == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn operator(&mut self) -> Result<Operator, String> {
        let (t, lit) = self.next(Ctx::KeyAndOperator);
        Ok(match t {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::Greater => Operator::GreaterThan,
            Tok::Less => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// `(a,b,...)`; empty entries stand for the empty value. Returned sorted, without
    /// repeats.
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.next(Ctx::Values);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.peek(Ctx::Values);
        let mut set = match t {
            Tok::Ident | Tok::Comma => {
                let set = self.identifier_list()?;
                let (t, _) = self.next(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                set
            }
            Tok::ClosedPar => {
                self.next(Ctx::Values);
                vec![String::new()]
            }
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        };
        set.sort();
        set.dedup();
        Ok(set)
    }

    fn identifier_list(&mut self) -> Result<Vec<String>, String> {
        let mut set: Vec<String> = Vec::new();
        loop {
            let (t, lit) = self.next(Ctx::Values);
            match t {
                Tok::Ident => {
                    set.push(lit);
                    let (t2, lit2) = self.peek(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.push(String::new());
                    }
                    let (t2, _) = self.peek(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        set.push(String::new());
                        return Ok(set);
                    }
                    if t2 == Tok::Comma {
                        set.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.peek(Ctx::Values);
        if t == Tok::End || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.next(Ctx::Values);
        if t == Tok::Ident {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

// ---------------------------------------------------------------------------------------
// Field selectors
// ---------------------------------------------------------------------------------------

/// How a field requirement compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One condition of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field label, e.g. `status.phase`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, with escapes resolved.
    pub value: String,
}

impl fmt::Display for FieldRequirement {
    /// `field=value` or `field!=value`, with `\`, `,` and `=` in the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// Escapes `\`, `,` and `=` with a backslash so a literal can be used as a field selector
/// value.
pub fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Resolves the escapes of a field selector value; bare `,` or `=` and unknown escapes are
/// errors.
fn unescape_field_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Go prints the rune as its number here.
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            c => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// Splits on commas that are not escaped; escapes stay in the pieces.
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==`, then `=` tried at each position).
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in
            [("!=", FieldOperator::NotEquals), ("==", FieldOperator::Equals), ("=", FieldOperator::Equals)]
        {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, value));
            }
        }
    }
    None
}

/// A parsed field selector: every requirement must hold. Empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> FieldSelector {
        FieldSelector::default()
    }

    /// Parses the `fieldSelector` query syntax: comma-separated `field=value`,
    /// `field==value` or `field!=value` terms. In values, `\,`, `\=` and `\\` stand for the
    /// literal characters. Terms are kept in sorted order, as upstream sorts them. A term
    /// with neither field nor value (`=`) selects nothing and is dropped.
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut terms = split_field_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms {
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw)) = split_field_term(term) else {
                return Err(format!("invalid selector: '{s}'; can't understand '{term}'"));
            };
            let value = unescape_field_value(raw)?;
            if field.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement { field: field.to_string(), operator, value });
        }
        Ok(FieldSelector { requirements })
    }

    /// Builds a selector from requirements as given.
    pub fn from_requirements(requirements: Vec<FieldRequirement>) -> FieldSelector {
        FieldSelector { requirements }
    }

    /// The requirements.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// Whether the selector places no condition.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a set of fields (as from [`field_set`]) satisfies every requirement. A field
    /// missing from the set counts as the empty string.
    pub fn matches(&self, fields: &[(String, String)]) -> bool {
        self.requirements.iter().all(|r| {
            let have = fields.iter().find(|(k, _)| *k == r.field).map(|(_, v)| v.as_str()).unwrap_or("");
            match r.operator {
                FieldOperator::Equals => have == r.value,
                FieldOperator::NotEquals => have != r.value,
            }
        })
    }

    /// Shorthand for [`FieldSelector::matches`] over [`field_set`] of the object.
    pub fn matches_object(&self, group: &str, plural: &str, obj: &Value) -> bool {
        self.is_empty() || self.matches(&field_set(group, plural, obj))
    }

    /// If the selector pins `field` with `=`/`==`, that value.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// Requirements joined with `,`, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FieldSelector::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Per-resource field labels
// ---------------------------------------------------------------------------------------

const META_ONLY: &[&str] = &["metadata.name", "metadata.namespace"];
const PODS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
    // Old clients' name for spec.nodeName.
    "spec.host",
];
const CORE_EVENTS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];
const EVENTS_V1: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reason",
    "reportingController",
    "source",
    "type",
];
const SECRETS: &[&str] = &["metadata.name", "metadata.namespace", "type"];
const SERVICES: &[&str] = &["metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"];
const NAMESPACES: &[&str] = &["metadata.name", "status.phase"];
const NODES: &[&str] = &["metadata.name", "spec.unschedulable"];
const REPLICAS: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];
const JOBS: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const SIGNER_NAME: &[&str] = &["metadata.name", "spec.signerName"];
const RESOURCE_SLICES: &[&str] = &["metadata.name", "spec.nodeName", "spec.driver"];

/// How a resource words the rejection of an unknown field label.
#[derive(Clone, Copy)]
enum Rejection {
    /// `field label not supported: <label>`
    Plain,
    /// `"<label>" is not a known field selector: only "metadata.name", "metadata.namespace"`
    MetaDefault,
    /// `field label "<label>" not supported for Job`
    Job,
    /// `field label not supported for resource.k8s.io/v1beta1, Kind=ResourceSlice: <label>`
    ResourceSlice,
}

fn field_labels(group: &str, plural: &str) -> (&'static [&'static str], Rejection) {
    match (group, plural) {
        ("", "pods") => (PODS, Rejection::Plain),
        ("", "events") => (CORE_EVENTS, Rejection::Plain),
        ("", "secrets") => (SECRETS, Rejection::Plain),
        ("", "services") => (SERVICES, Rejection::Plain),
        ("", "namespaces") => (NAMESPACES, Rejection::Plain),
        ("", "nodes") => (NODES, Rejection::Plain),
        ("", "replicationcontrollers") => (REPLICAS, Rejection::Plain),
        ("apps", "replicasets") => (REPLICAS, Rejection::Plain),
        ("batch", "jobs") => (JOBS, Rejection::Job),
        ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
            (SIGNER_NAME, Rejection::Plain)
        }
        ("events.k8s.io", "events") => (EVENTS_V1, Rejection::Plain),
        ("resource.k8s.io", "resourceslices") => (RESOURCE_SLICES, Rejection::ResourceSlice),
        _ => (META_ONLY, Rejection::MetaDefault),
    }
}

/// The field labels a resource accepts in a field selector, as upstream's field label
/// conversion functions allow them. Resources without their own list accept
/// `metadata.name` and `metadata.namespace`; a few cluster-scoped ones with their own list
/// (nodes, namespaces, certificate signing requests, cluster trust bundles, resource
/// slices) accept no `metadata.namespace`, as upstream.
pub fn supported_field_labels(group: &str, plural: &str) -> &'static [&'static str] {
    field_labels(group, plural).0
}

fn rejection_message(how: Rejection, label: &str) -> String {
    match how {
        Rejection::Plain => format!("field label not supported: {label}"),
        Rejection::MetaDefault => {
            format!("{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"", go_quote(label))
        }
        Rejection::Job => format!("field label {} not supported for Job", go_quote(label)),
        Rejection::ResourceSlice => {
            format!("field label not supported for resource.k8s.io/v1beta1, Kind=ResourceSlice: {label}")
        }
    }
}

/// Checks every label of the selector against [`supported_field_labels`]; the first
/// unknown one gives upstream's message for the resource (400 `BadRequest` at the server),
/// e.g. `field label not supported: spec.foo`.
pub fn check_field_labels(group: &str, plural: &str, sel: &FieldSelector) -> Result<(), String> {
    let (labels, how) = field_labels(group, plural);
    match sel.requirements.iter().find(|r| !labels.contains(&r.field.as_str())) {
        Some(r) => Err(rejection_message(how, &r.field)),
        None => Ok(()),
    }
}

/// Checks the labels like [`check_field_labels`] and renames the ones upstream renames
/// to the stored form: `spec.host` to `spec.nodeName` for pods; for events.k8s.io events
/// `regarding.*` to `involvedObject.*` and `reportingController` to `reportingComponent`.
///
/// [`field_set`] carries both names, so matching works with or without this step.
pub fn convert_field_labels(group: &str, plural: &str, sel: &FieldSelector) -> Result<FieldSelector, String> {
    check_field_labels(group, plural, sel)?;
    let rename = |field: &str| -> String {
        match (group, plural, field) {
            ("", "pods", "spec.host") => "spec.nodeName".to_string(),
            ("events.k8s.io", "events", "reportingController") => "reportingComponent".to_string(),
            ("events.k8s.io", "events", f) if f.starts_with("regarding.") => {
                format!("involvedObject.{}", &f["regarding.".len()..])
            }
            _ => field.to_string(),
        }
    };
    Ok(FieldSelector {
        requirements: sel
            .requirements
            .iter()
            .map(|r| FieldRequirement { field: rename(&r.field), operator: r.operator, value: r.value.clone() })
            .collect(),
    })
}

/// [`Value::pointer`], without allocating for pointers that hold no `~` escapes.
fn at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.contains('~') {
        return obj.pointer(pointer);
    }
    if pointer.is_empty() {
        return Some(obj);
    }
    pointer.strip_prefix('/')?.split('/').try_fold(obj, |target, token| match target {
        Value::Object(map) => map.get(token),
        // As `Value::pointer` reads an index: no sign, no leading zeros.
        Value::Array(list) if !token.starts_with('+') && (!token.starts_with('0') || token.len() == 1) => {
            token.parse::<usize>().ok().and_then(|i| list.get(i))
        }
        _ => None,
    })
}

/// A value as a selector sees it: strings as they are, numbers and booleans printed,
/// anything else (missing, null, objects) as the empty string.
fn text_at(obj: &Value, pointer: &str) -> String {
    match at(obj, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Like [`text_at`], but a missing or non-boolean value reads as `false`.
fn bool_at(obj: &Value, pointer: &str) -> String {
    at(obj, pointer).and_then(Value::as_bool).unwrap_or(false).to_string()
}

/// Like [`text_at`], but a missing or non-integer value reads as `0`.
fn int_at(obj: &Value, pointer: &str) -> String {
    at(obj, pointer).and_then(Value::as_i64).unwrap_or(0).to_string()
}

fn first_non_empty(values: [String; 2]) -> String {
    let [a, b] = values;
    if a.is_empty() { b } else { a }
}

/// Fields of an event, in either of its two shapes (core/v1 or events.k8s.io/v1),
/// under both vocabularies.
fn event_fields(obj: &Value, out: &mut Vec<(String, String)>) {
    let new_shape = obj.get("apiVersion").and_then(Value::as_str).is_some_and(|v| v.starts_with("events.k8s.io/"));
    let (reference, reporting, source) = if new_shape {
        ("/regarding", "/reportingController", "/deprecatedSource/component")
    } else {
        ("/involvedObject", "/reportingComponent", "/source/component")
    };
    for part in ["kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"] {
        let v = text_at(obj, &format!("{reference}/{part}"));
        out.push((format!("involvedObject.{part}"), v.clone()));
        out.push((format!("regarding.{part}"), v));
    }
    let reporting = text_at(obj, reporting);
    out.push(("reason".into(), text_at(obj, "/reason")));
    out.push(("reportingComponent".into(), reporting.clone()));
    out.push(("reportingController".into(), reporting.clone()));
    // Events written through events.k8s.io may carry no source; the reporting controller
    // stands in for it.
    out.push(("source".into(), first_non_empty([text_at(obj, source), reporting])));
    out.push(("type".into(), text_at(obj, "/type")));
}

/// The selectable fields of an object of the given resource, with values formatted as
/// upstream formats them (booleans `true`/`false`, counts as integers, missing strings
/// empty). Always includes `metadata.name` and `metadata.namespace`.
///
/// Old or alternative label names are included next to the stored ones (pods' `spec.host`;
/// for events both the core/v1 and the events.k8s.io/v1 names), so one set serves requests
/// through any group.
pub fn field_set(group: &str, plural: &str, obj: &Value) -> Vec<(String, String)> {
    let mut out = vec![
        ("metadata.name".to_string(), text_at(obj, "/metadata/name")),
        ("metadata.namespace".to_string(), text_at(obj, "/metadata/namespace")),
    ];
    let mut put = |k: &str, v: String| out.push((k.to_string(), v));
    match (group, plural) {
        ("", "pods") => {
            let node = text_at(obj, "/spec/nodeName");
            put("spec.nodeName", node.clone());
            put("spec.host", node);
            put("spec.restartPolicy", text_at(obj, "/spec/restartPolicy"));
            put("spec.schedulerName", text_at(obj, "/spec/schedulerName"));
            put("spec.serviceAccountName", text_at(obj, "/spec/serviceAccountName"));
            put("spec.hostNetwork", bool_at(obj, "/spec/hostNetwork"));
            put("status.phase", text_at(obj, "/status/phase"));
            put("status.podIP", first_non_empty([text_at(obj, "/status/podIPs/0/ip"), text_at(obj, "/status/podIP")]));
            put("status.nominatedNodeName", text_at(obj, "/status/nominatedNodeName"));
        }
        ("", "events") | ("events.k8s.io", "events") => event_fields(obj, &mut out),
        ("", "secrets") => put("type", text_at(obj, "/type")),
        ("", "services") => {
            put("spec.clusterIP", text_at(obj, "/spec/clusterIP"));
            put("spec.type", text_at(obj, "/spec/type"));
        }
        ("", "namespaces") => put("status.phase", text_at(obj, "/status/phase")),
        ("", "nodes") => put("spec.unschedulable", bool_at(obj, "/spec/unschedulable")),
        ("", "replicationcontrollers") | ("apps", "replicasets") => {
            put("status.replicas", int_at(obj, "/status/replicas"))
        }
        ("batch", "jobs") => put("status.successful", int_at(obj, "/status/succeeded")),
        ("certificates.k8s.io", "certificatesigningrequests" | "clustertrustbundles") => {
            put("spec.signerName", text_at(obj, "/spec/signerName"))
        }
        ("resource.k8s.io", "resourceslices") => {
            put("spec.nodeName", text_at(obj, "/spec/nodeName"));
            put("spec.driver", text_at(obj, "/spec/driver"));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_read_as_serde_json_reads_them() {
        let obj = json!({"a": {"b": [{"c": 1}, "x"], "": {"": 2}, "d/e": 3, "f~g": 4}});
        for p in [
            "",
            "/",
            "/a",
            "/a/b",
            "/a/b/0/c",
            "/a/b/1",
            "/a/b/01",
            "/a/b/+1",
            "/a/b/2",
            "/a/b/-1",
            "/a//",
            "/a/",
            "a",
            "/a/d~1e",
            "/a/f~0g",
            "/a/b/0/c/d",
            "/x/y",
        ] {
            assert_eq!(at(&obj, p), obj.pointer(p), "{p:?}");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const NAME_PART_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

    #[test]
    fn label_selectors_parse_to_their_canonical_form() {
        let cases = [
            ("", ""),
            ("   ", ""),
            ("x=a", "x=a"),
            ("x==a", "x==a"),
            ("x!=a", "x!=a"),
            ("x=", "x="),
            ("x=,z= ", "x=,z="),
            ("x= ,z= ", "x=,z="),
            ("x", "x"),
            ("!x", "!x"),
            ("  !x  ", "!x"),
            ("x in (a)", "x in (a)"),
            ("x in (b,a)", "x in (a,b)"),
            ("x in (a,a,b)", "x in (a,b)"),
            ("x in ()", "x in ()"),
            ("x notin (a, b)", "x notin (a,b)"),
            ("x in (,a)", "x in (,a)"),
            ("x in (a,)", "x in (,a)"),
            ("x in (a,,b)", "x in (,a,b)"),
            ("x in (in)", "x in (in)"),
            ("x=notin", "x=notin"),
            ("x>1", "x>1"),
            ("x<10", "x<10"),
            ("z=a,x=b,y", "x=b,y,z=a"),
            ("w in (a),x notin (b),!y,z", "w in (a),x notin (b),!y,z"),
            ("example.com/app=web", "example.com/app=web"),
            ("x\t=\ta", "x=a"),
            ("x=a, y!=b", "x=a,y!=b"),
        ];
        for (input, canonical) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.to_string(), canonical, "input {input:?}");
            // The canonical form parses back to the same selector.
            assert_eq!(LabelSelector::parse(canonical).unwrap(), sel, "reparse of {canonical:?}");
        }
    }

    #[test]
    fn label_selector_errors_read_as_upstream() {
        let cases: Vec<(&str, String)> = vec![
            ("x=a b", "found 'b', expected: ',' or 'end of string'".into()),
            ("x y", "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt".into()),
            ("x,", "found '', expected: identifier after ','".into()),
            ("x,,y", "found ',', expected: identifier after ','".into()),
            (",x", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("=a", "found '=', expected: !, identifier, or 'end of string'".into()),
            ("x in a", "unable to parse requirement: found 'a' expected: '('".into()),
            ("x in (a", "unable to parse requirement: found '', expected: ',' or ')'".into()),
            ("x in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'".into()),
            ("x in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
            ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier".into()),
            ("x=(a)", "unable to parse requirement: found '(', expected: identifier".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            ("x>a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            ("-x=a", format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_PART_ERR}")),
            ("/x", "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be non-empty".into()),
            ("a/b/c", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()),
            ("x/", format!("unable to parse requirement: <nil>: Invalid value: \"x/\": name part must be non-empty; {NAME_PART_ERR}")),
            ("Ex.com/a", "unable to parse requirement: <nil>: Invalid value: \"Ex.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into()),
            ("x=a@b", format!("unable to parse requirement: values[0][x]: Invalid value: \"a@b\": {VALUE_ERR}")),
            ("x in (-a,-b)", format!("unable to parse requirement: [values[0][x]: Invalid value: \"-a\": {VALUE_ERR}, values[1][x]: Invalid value: \"-b\": {VALUE_ERR}]")),
        ];
        for (input, want) in cases {
            assert_eq!(LabelSelector::parse(input).unwrap_err(), want, "input {input:?}");
        }
        let long = "k".repeat(64);
        assert_eq!(
            LabelSelector::parse(&format!("{long}=a")).unwrap_err(),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters"
            )
        );
    }

    #[test]
    fn label_selectors_match_label_sets() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            ("", &[], true),
            ("", &[("a", "b")], true),
            ("x=a", &[("x", "a")], true),
            ("x=a", &[("x", "b")], false),
            ("x=a", &[], false),
            ("x==a", &[("x", "a")], true),
            ("x!=a", &[("x", "b")], true),
            ("x!=a", &[], true),
            ("x!=a", &[("x", "a")], false),
            ("x=", &[("x", "")], true),
            ("x=", &[], false),
            ("x in (a,b)", &[("x", "b")], true),
            ("x in (a,b)", &[("x", "c")], false),
            ("x in (a,b)", &[], false),
            ("x notin (a,b)", &[("x", "c")], true),
            ("x notin (a,b)", &[], true),
            ("x notin (a,b)", &[("x", "a")], false),
            ("x", &[("x", "")], true),
            ("x", &[("y", "")], false),
            ("!x", &[("y", "")], true),
            ("!x", &[("x", "a")], false),
            ("x>1", &[("x", "2")], true),
            ("x>1", &[("x", "1")], false),
            ("x>1", &[("x", "two")], false),
            ("x>1", &[], false),
            ("x<1", &[("x", "-3")], true),
            ("x=a,y=b", &[("x", "a"), ("y", "b")], true),
            ("x=a,y=b", &[("x", "a"), ("y", "c")], false),
            ("x in (),y", &[("x", ""), ("y", "q")], true),
        ];
        for (sel, set, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap();
            assert_eq!(parsed.matches(&labels(set)), *want, "{sel:?} against {set:?}");
            let obj = json!({"metadata": {"labels": labels(set)}});
            assert_eq!(parsed.matches_value(&obj), *want, "{sel:?} against object with {set:?}");
        }
        let no_labels = json!({"metadata": {"name": "n"}});
        assert!(LabelSelector::parse("!x").unwrap().matches_value(&no_labels));
        assert!(!LabelSelector::parse("x").unwrap().matches_value(&no_labels));
    }

    #[test]
    fn label_selector_accessors() {
        let sel = LabelSelector::parse("b in (y),a=x,c").unwrap();
        assert!(!sel.is_empty());
        assert!(LabelSelector::parse("").unwrap().is_empty());
        let keys: Vec<&str> = sel.requirements().iter().map(Requirement::key).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(sel.requirements()[1].operator(), Operator::In);
        assert_eq!(sel.requires_exact_match("a"), Some("x"));
        assert_eq!(sel.requires_exact_match("b"), Some("y"));
        assert_eq!(sel.requires_exact_match("c"), None);
        assert_eq!("a=b".parse::<LabelSelector>().unwrap().to_string(), "a=b");
    }

    #[test]
    fn label_selectors_from_k8s() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
        let sel: meta::LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "Exists"},
                {"key": "track", "operator": "NotIn", "values": ["canary"]}
            ]
        }))
        .unwrap();
        let s = LabelSelector::from_k8s(&sel).unwrap();
        assert_eq!(s.to_string(), "app=web,env in (dev,prod),!legacy,tier=front,track notin (canary),zone");
        let good = labels(&[("app", "web"), ("tier", "front"), ("env", "dev"), ("zone", "z")]);
        assert!(s.matches(&good));
        let mut bad = good.clone();
        bad.insert("legacy".into(), "1".into());
        assert!(!s.matches(&bad));

        assert!(LabelSelector::from_k8s(&meta::LabelSelector::default()).unwrap().is_empty());

        let errs = [
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
                "\"Foo\" is not a valid label selector operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]}),
                "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists and does not exist",
            ),
            (
                json!({"matchLabels": {"a": "-"}}),
                "values[0][a]: Invalid value: \"-\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ),
        ];
        for (input, want) in errs {
            let sel: meta::LabelSelector = serde_json::from_value(input).unwrap();
            assert_eq!(LabelSelector::from_k8s(&sel).unwrap_err(), want);
        }
        let bad_key: meta::LabelSelector = serde_json::from_value(json!({"matchLabels": {"-a": "b"}})).unwrap();
        assert_eq!(
            LabelSelector::from_k8s(&bad_key).unwrap_err(),
            format!("key: Invalid value: \"-a\": {NAME_PART_ERR}")
        );
    }

    #[test]
    fn field_selectors_parse() {
        type Case<'a> = (&'a str, &'a [(&'a str, FieldOperator, &'a str)], &'a str);
        let cases: &[Case] = &[
            ("", &[], ""),
            ("a=b", &[("a", FieldOperator::Equals, "b")], "a=b"),
            ("a==b", &[("a", FieldOperator::Equals, "b")], "a=b"),
            ("a!=b", &[("a", FieldOperator::NotEquals, "b")], "a!=b"),
            ("a=", &[("a", FieldOperator::Equals, "")], "a="),
            ("b=1,a=2", &[("a", FieldOperator::Equals, "2"), ("b", FieldOperator::Equals, "1")], "a=2,b=1"),
            ("a=b,,c=d", &[("a", FieldOperator::Equals, "b"), ("c", FieldOperator::Equals, "d")], "a=b,c=d"),
            ("a=x\\,y", &[("a", FieldOperator::Equals, "x,y")], "a=x\\,y"),
            ("a=x\\=y\\\\", &[("a", FieldOperator::Equals, "x=y\\")], "a=x\\=y\\\\"),
            ("a!=\\,", &[("a", FieldOperator::NotEquals, ",")], "a!=\\,"),
            ("=", &[], ""),
            (" a = b ", &[(" a ", FieldOperator::Equals, " b ")], " a = b "),
        ];
        for (input, want, display) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got: Vec<(&str, FieldOperator, &str)> =
                sel.requirements().iter().map(|r| (r.field.as_str(), r.operator, r.value.as_str())).collect();
            assert_eq!(got.as_slice(), *want, "input {input:?}");
            assert_eq!(sel.to_string(), *display, "input {input:?}");
            assert_eq!(sel.is_empty(), want.is_empty());
        }
    }

    #[test]
    fn field_selector_errors_read_as_upstream() {
        let cases = [
            ("a", "invalid selector: 'a'; can't understand 'a'"),
            ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
            ("a=b=c", "invalid field selector: unescaped character in value: 61"),
            ("a==b,c=d\\", "invalid field selector: invalid escape sequence: \\"),
            ("a=\\n", "invalid field selector: invalid escape sequence: \\n"),
        ];
        for (input, want) in cases {
            assert_eq!(FieldSelector::parse(input).unwrap_err(), want, "input {input:?}");
        }
    }

    #[test]
    fn field_selectors_match_field_sets() {
        let fields: Vec<(String, String)> = [("status.phase", "Running"), ("spec.nodeName", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cases = [
            ("", true),
            ("status.phase=Running", true),
            ("status.phase==Running", true),
            ("status.phase!=Running", false),
            ("status.phase=Pending", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("missing=", true),
            ("missing!=x", true),
            ("missing=x", false),
            ("status.phase=Running,spec.nodeName=", true),
            ("status.phase=Running,spec.nodeName=n1", false),
        ];
        for (sel, want) in cases {
            assert_eq!(FieldSelector::parse(sel).unwrap().matches(&fields), want, "{sel:?}");
        }
        let sel = FieldSelector::parse("metadata.name=a,status.phase!=x").unwrap();
        assert_eq!(sel.requires_exact_match("metadata.name"), Some("a"));
        assert_eq!(sel.requires_exact_match("status.phase"), None);
    }

    fn as_map(set: Vec<(String, String)>) -> BTreeMap<String, String> {
        set.into_iter().collect()
    }

    #[test]
    fn pod_field_set() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                     "serviceAccountName": "sa", "hostNetwork": true},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                       "nominatedNodeName": "n2"}
        });
        let set = as_map(field_set("", "pods", &pod));
        let want = [
            ("metadata.name", "p"),
            ("metadata.namespace", "ns"),
            ("spec.nodeName", "n1"),
            ("spec.host", "n1"),
            ("spec.restartPolicy", "Always"),
            ("spec.schedulerName", "default-scheduler"),
            ("spec.serviceAccountName", "sa"),
            ("spec.hostNetwork", "true"),
            ("status.phase", "Running"),
            ("status.podIP", "10.0.0.1"),
            ("status.nominatedNodeName", "n2"),
        ];
        for (k, v) in want {
            assert_eq!(set.get(k).map(String::as_str), Some(v), "{k}");
        }
        for label in supported_field_labels("", "pods") {
            assert!(set.contains_key(*label), "{label} missing from the pod field set");
        }
        let bare = as_map(field_set("", "pods", &json!({"metadata": {"name": "p"}})));
        assert_eq!(bare["spec.hostNetwork"], "false");
        assert_eq!(bare["spec.nodeName"], "");
        assert_eq!(bare["metadata.namespace"], "");
        let only_pod_ip = as_map(field_set("", "pods", &json!({"status": {"podIP": "10.1.1.1"}})));
        assert_eq!(only_pod_ip["status.podIP"], "10.1.1.1");
    }

    #[test]
    fn other_field_sets() {
        let cases: Vec<(&str, &str, Value, &str, &str)> = vec![
            ("", "secrets", json!({"type": "Opaque"}), "type", "Opaque"),
            ("", "namespaces", json!({"status": {"phase": "Active"}}), "status.phase", "Active"),
            ("", "nodes", json!({"spec": {"unschedulable": true}}), "spec.unschedulable", "true"),
            ("", "nodes", json!({"spec": {}}), "spec.unschedulable", "false"),
            ("", "replicationcontrollers", json!({"status": {"replicas": 3}}), "status.replicas", "3"),
            ("", "replicationcontrollers", json!({}), "status.replicas", "0"),
            ("apps", "replicasets", json!({"status": {"replicas": 2}}), "status.replicas", "2"),
            ("batch", "jobs", json!({"status": {"succeeded": 1}}), "status.successful", "1"),
            ("batch", "jobs", json!({"status": {}}), "status.successful", "0"),
            (
                "",
                "services",
                json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10"}}),
                "spec.clusterIP",
                "10.96.0.10",
            ),
            ("", "services", json!({"spec": {"type": "NodePort"}}), "spec.type", "NodePort"),
            (
                "certificates.k8s.io",
                "certificatesigningrequests",
                json!({"spec": {"signerName": "kubernetes.io/kubelet-serving"}}),
                "spec.signerName",
                "kubernetes.io/kubelet-serving",
            ),
            (
                "resource.k8s.io",
                "resourceslices",
                json!({"spec": {"driver": "gpu.example.com"}}),
                "spec.driver",
                "gpu.example.com",
            ),
            ("apps", "deployments", json!({"metadata": {"name": "d", "namespace": "x"}}), "metadata.namespace", "x"),
        ];
        for (group, plural, obj, key, want) in cases {
            let set = as_map(field_set(group, plural, &obj));
            assert_eq!(set.get(key).map(String::as_str), Some(want), "{group}/{plural} {key}");
            for label in supported_field_labels(group, plural) {
                assert!(set.contains_key(*label), "{label} missing from {group}/{plural}");
            }
        }
    }

    #[test]
    fn event_field_sets_serve_both_groups() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u1", "apiVersion": "v1",
                               "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
            "reason": "Started", "type": "Normal",
            "source": {"component": "kubelet", "host": "n1"},
            "reportingComponent": "kubelet-r"
        });
        let from_core = as_map(field_set("", "events", &core));
        assert_eq!(from_core["involvedObject.kind"], "Pod");
        assert_eq!(from_core["involvedObject.fieldPath"], "spec.containers{c}");
        assert_eq!(from_core["regarding.name"], "p");
        assert_eq!(from_core["source"], "kubelet");
        assert_eq!(from_core["reportingComponent"], "kubelet-r");
        assert_eq!(from_core["reason"], "Started");
        assert_eq!(from_core["type"], "Normal");

        let new_shape = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "regarding": {"kind": "Pod", "name": "p"},
            "reportingController": "ctrl", "reason": "R", "type": "Warning"
        });
        let from_new = as_map(field_set("events.k8s.io", "events", &new_shape));
        assert_eq!(from_new["involvedObject.kind"], "Pod");
        assert_eq!(from_new["regarding.kind"], "Pod");
        // No source: the reporting controller stands in.
        assert_eq!(from_new["source"], "ctrl");
        assert_eq!(from_new["reportingController"], "ctrl");

        for (group, set) in [("", &from_core), ("events.k8s.io", &from_new)] {
            for label in supported_field_labels(group, "events") {
                assert!(set.contains_key(*label), "{label} missing for {group:?}");
            }
        }

        // An events.k8s.io selector matches the stored core object, converted or not.
        let sel = FieldSelector::parse("regarding.name=p,reportingController=kubelet-r").unwrap();
        assert!(sel.matches_object("events.k8s.io", "events", &core));
        let converted = convert_field_labels("events.k8s.io", "events", &sel).unwrap();
        assert_eq!(converted.to_string(), "involvedObject.name=p,reportingComponent=kubelet-r");
        assert!(converted.matches(&field_set("", "events", &core)));
    }

    #[test]
    fn field_label_checks() {
        let ok = [
            ("", "pods", "spec.nodeName=a,status.phase=Running,metadata.namespace=x"),
            ("", "pods", "spec.host=n1"),
            ("", "events", "involvedObject.name=x,source=kubelet,reportingComponent=k"),
            ("events.k8s.io", "events", "regarding.kind=Pod,reportingController=k,source=s"),
            ("", "nodes", "spec.unschedulable=false,metadata.name=n"),
            ("", "secrets", "type=Opaque"),
            ("", "services", "spec.type=ClusterIP,spec.clusterIP=None"),
            ("apps", "replicasets", "status.replicas=0"),
            ("batch", "jobs", "status.successful=1"),
            ("apps", "deployments", "metadata.name=a,metadata.namespace=b"),
            ("rbac.authorization.k8s.io", "clusterroles", "metadata.namespace="),
            ("", "pods", ""),
        ];
        for (group, plural, sel) in ok {
            let sel = FieldSelector::parse(sel).unwrap();
            assert_eq!(check_field_labels(group, plural, &sel), Ok(()), "{group}/{plural} {sel}");
        }
        let rejected = [
            ("", "pods", "spec.foo=a", "field label not supported: spec.foo"),
            ("", "pods", "status.phase=a,status.hostIP=b", "field label not supported: status.hostIP"),
            ("", "nodes", "metadata.namespace=x", "field label not supported: metadata.namespace"),
            ("", "events", "regarding.name=x", "field label not supported: regarding.name"),
            ("events.k8s.io", "events", "involvedObject.name=x", "field label not supported: involvedObject.name"),
            ("batch", "jobs", "spec.foo=1", "field label \"spec.foo\" not supported for Job"),
            (
                "apps",
                "deployments",
                "spec.replicas=1",
                "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
            (
                "resource.k8s.io",
                "resourceslices",
                "spec.pool=x",
                "field label not supported for resource.k8s.io/v1beta1, Kind=ResourceSlice: spec.pool",
            ),
        ];
        for (group, plural, sel, want) in rejected {
            let parsed = FieldSelector::parse(sel).unwrap();
            assert_eq!(check_field_labels(group, plural, &parsed).unwrap_err(), want, "{group}/{plural} {sel}");
            assert_eq!(convert_field_labels(group, plural, &parsed).unwrap_err(), want);
        }
        let host = convert_field_labels("", "pods", &FieldSelector::parse("spec.host=n1").unwrap()).unwrap();
        assert_eq!(host.to_string(), "spec.nodeName=n1");
        for (group, plural) in [("", "pods"), ("", "configmaps"), ("events.k8s.io", "events"), ("batch", "jobs")] {
            let labels = supported_field_labels(group, plural);
            assert!(labels.contains(&"metadata.name") && labels.contains(&"metadata.namespace"), "{group}/{plural}");
        }
    }

    #[test]
    fn field_values_escape_round_trip() {
        for raw in ["plain", "a,b", "x=y", "back\\slash", ",=\\", ""] {
            let escaped = escape_field_value(raw);
            let sel = FieldSelector::parse(&format!("f={escaped}")).unwrap();
            assert_eq!(sel.requirements()[0].value, raw);
            assert_eq!(sel.to_string(), format!("f={escaped}"));
        }
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{1}é"), "\"\\x01é\"");
    }
}
