//! Parsing of `resource.Quantity` strings ("500m", "1Gi", "1e3", "0.5") into integers.
//!
//! The scheduler compares CPU in millicores and everything else in whole units, as upstream
//! does (`MilliValue` for cpu, `Value` for the rest). Both round up, so a request of "0.1m"
//! counts as one millicore and "1.5" bytes as two.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The quantity times 1000, rounded up (towards positive infinity); `None` when the text is
/// not a quantity. Values too large for `i128` saturate.
pub fn parse_milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(end);
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let (pow10, pow2) = suffix_exponents(suffix)?;
    let digits: String = whole.chars().chain(fraction.chars()).skip_while(|c| *c == '0').collect();
    // Keep at most 36 significant digits; the rest only ever matters for rounding up.
    let (kept, dropped) = if digits.len() > 36 { digits.split_at(36) } else { (digits.as_str(), "") };
    let mut mantissa: i128 = if kept.is_empty() { 0 } else { kept.parse().ok()? };
    let truncated = dropped.bytes().any(|b| b != b'0');
    if truncated {
        mantissa += 1;
    }
    let scale = fraction.len() as i64 - dropped.len() as i64;
    let mut value = mantissa.saturating_mul(1i128.checked_shl(pow2).unwrap_or(i128::MAX));
    let exponent = pow10 + 3 - scale;
    if exponent >= 0 {
        let factor = u32::try_from(exponent).ok().and_then(|e| 10i128.checked_pow(e)).unwrap_or(i128::MAX);
        value = value.saturating_mul(factor);
    } else {
        match u32::try_from(-exponent).ok().and_then(|e| 10i128.checked_pow(e)) {
            Some(divisor) => {
                // Rounding up in magnitude is what upstream does for both signs; here we
                // round towards positive infinity for positive values, which is all requests are.
                value = value / divisor + i128::from(value % divisor != 0);
            }
            None => value = i128::from(value != 0),
        }
    }
    Some(if negative { -value } else { value })
}

/// (power of ten, power of two) of a quantity suffix.
fn suffix_exponents(suffix: &str) -> Option<(i64, u32)> {
    Some(match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.starts_with(['e', 'E']) => {
            let exp: i64 = s[1..].parse().ok()?;
            (exp.clamp(-1000, 1000), 0)
        }
        _ => return None,
    })
}

fn clamp(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The quantity in thousandths (millicores for cpu), rounded up; 0 when unparsable.
pub fn milli_value(q: &Quantity) -> i64 {
    parse_milli(&q.0).map(clamp).unwrap_or(0)
}

/// The quantity in whole units, rounded up; 0 when unparsable.
pub fn value(q: &Quantity) -> i64 {
    parse_milli(&q.0)
        .map(|m| {
            let whole = m / 1000 + i128::from(m % 1000 > 0);
            clamp(whole)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1", Some(1000)),
            ("500m", Some(500)),
            ("0.5", Some(500)),
            (".5", Some(500)),
            ("1.", Some(1000)),
            ("2", Some(2000)),
            ("1k", Some(1_000_000)),
            ("1Ki", Some(1_024_000)),
            ("1Gi", Some(1_073_741_824_000)),
            ("4Gi", Some(4 * 1_073_741_824_000)),
            ("1.5Gi", Some(1_610_612_736_000)),
            ("1e3", Some(1_000_000)),
            ("1E3", Some(1_000_000)),
            ("1E", Some(1_000_000_000_000_000_000_000)),
            ("1e-3", Some(1)),
            ("100n", Some(1)),
            ("0.1m", Some(1)),
            ("1u", Some(1)),
            ("0", Some(0)),
            ("-1", Some(-1000)),
            ("+3", Some(3000)),
            ("128974848", Some(128_974_848_000)),
            ("129M", Some(129_000_000_000)),
            ("123Mi", Some(128_974_848_000)),
            ("", None),
            ("abc", None),
            ("1Q", None),
            ("1..2", None),
            ("m", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_milli(text), *want, "{text}");
        }
    }

    #[test]
    fn rounds_up_to_whole_units() {
        assert_eq!(value(&Quantity("1.5".into())), 2);
        assert_eq!(value(&Quantity("1Gi".into())), 1 << 30);
        assert_eq!(milli_value(&Quantity("100m".into())), 100);
        assert_eq!(value(&Quantity("garbage".into())), 0);
        assert_eq!(value(&Quantity("1000Ei".into())), i64::MAX);
    }
}
