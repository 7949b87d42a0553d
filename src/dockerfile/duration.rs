//! Go's `time.ParseDuration` syntax (`1m30s`, `500ms`, `1.5h`), which
//! HEALTHCHECK's duration flags use.

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, take_while};
use nom::character::complete::{char, one_of};
use nom::combinator::opt;
use nom::multi::many1;

/// Nanoseconds per unit, as Go spells the units.
fn unit(i: &str) -> IResult<&str, u128> {
    alt((
        tag("ns").map(|_| 1),
        tag("us").map(|_| 1_000),
        tag("\u{b5}s").map(|_| 1_000),
        tag("\u{3bc}s").map(|_| 1_000),
        tag("ms").map(|_| 1_000_000),
        tag("s").map(|_| 1_000_000_000),
        tag("m").map(|_| 60 * 1_000_000_000),
        tag("h").map(|_| 3_600 * 1_000_000_000),
    ))
    .parse(i)
}

/// `digits [ "." digits ] unit`, in nanoseconds (fractions truncated).
fn component(i: &str) -> IResult<&str, u128> {
    let digits = |i| take_while(|c: char| c.is_ascii_digit())(i);
    let (rest, (int, frac, per)) = (digits, opt((char('.'), digits)), unit).parse(i)?;
    let frac = frac.map_or("", |(_, f)| f);
    if int.is_empty() && frac.is_empty() {
        return Err(nom::Err::Error(nom::error::Error::new(
            i,
            nom::error::ErrorKind::Digit,
        )));
    }
    let too_big = || nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::TooLarge));
    let whole: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_big())?
    };
    let mut nanos = whole.checked_mul(per).ok_or_else(too_big)?;
    let mut scale = per;
    for d in frac.bytes() {
        scale /= 10;
        nanos = nanos.saturating_add(u128::from(d - b'0') * scale);
    }
    Ok((rest, nanos))
}

/// Parses a Go duration: whether it is negative and its length in
/// nanoseconds. `None` when it is not a duration or exceeds Go's range.
pub(crate) fn parse_go_duration(s: &str) -> Option<(bool, u128)> {
    let (rest, sign) = opt(one_of::<_, _, nom::error::Error<&str>>("+-"))
        .parse(s)
        .ok()?;
    let negative = sign == Some('-');
    if rest == "0" {
        return Some((negative, 0));
    }
    let (left, parts) = many1(component).parse(rest).ok()?;
    if !left.is_empty() {
        return None;
    }
    let total = parts.iter().try_fold(0u128, |acc, p| acc.checked_add(*p))?;
    (total <= i64::MAX as u128).then_some((negative, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some((false, 30_000_000_000)));
        assert_eq!(parse_go_duration("1m30s"), Some((false, 90_000_000_000)));
        assert_eq!(parse_go_duration("1.5h"), Some((false, 5_400_000_000_000)));
        assert_eq!(parse_go_duration("500ms"), Some((false, 500_000_000)));
        assert_eq!(parse_go_duration(".5s"), Some((false, 500_000_000)));
        assert_eq!(parse_go_duration("-2us"), Some((true, 2_000)));
        assert_eq!(parse_go_duration("0"), Some((false, 0)));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("5d"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("9999999999999h"), None);
    }
}
