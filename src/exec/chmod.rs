//! `--chmod` values: octal (`0755`), or symbolic (`u+x,go-w`, `a=rX`) as
//! BuildKit accepts since Dockerfile 1.10, applied to each copied file's
//! own mode.

/// A `--chmod` value that is neither octal nor symbolic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid --chmod value `{0}`: expected octal (0755) or symbolic (u+x,go-w)")]
pub struct ChmodError(pub String);

/// A parsed `--chmod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Set exactly these bits.
    Octal(u32),
    /// Change bits relative to each file's mode.
    Symbolic(Vec<Clause>),
}

/// One `who op perms` clause of a symbolic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    who: u32,
    op: char,
    perms: String,
}

const USER: u32 = 0o4700;
const GROUP: u32 = 0o2070;
const OTHER: u32 = 0o1007;

impl Chmod {
    /// Parses a `--chmod` value.
    pub fn parse(text: &str) -> Result<Self, ChmodError> {
        let bad = || ChmodError(text.to_owned());
        if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
            let mode = u32::from_str_radix(text, 8).map_err(|_| bad())?;
            return if mode <= 0o7777 {
                Ok(Chmod::Octal(mode))
            } else {
                Err(bad())
            };
        }
        let mut clauses = Vec::new();
        for part in text.split(',') {
            let ops_at = part.find(['+', '-', '=']).ok_or_else(bad)?;
            let (who_text, mut rest) = part.split_at(ops_at);
            let mut who = 0;
            for c in who_text.chars() {
                who |= match c {
                    'u' => USER,
                    'g' => GROUP,
                    'o' => OTHER,
                    'a' => USER | GROUP | OTHER,
                    _ => return Err(bad()),
                };
            }
            if who == 0 {
                who = USER | GROUP | OTHER;
            }
            while let Some(op) = rest.chars().next().filter(|c| matches!(c, '+' | '-' | '=')) {
                let after = rest.get(1..).unwrap_or_default();
                let end = after.find(['+', '-', '=']).unwrap_or(after.len());
                let (perms, next) = after.split_at(end);
                if !perms.chars().all(|c| "rwxXst".contains(c)) {
                    return Err(bad());
                }
                clauses.push(Clause {
                    who,
                    op,
                    perms: perms.to_owned(),
                });
                rest = next;
            }
            if !rest.is_empty() {
                return Err(bad());
            }
        }
        Ok(Chmod::Symbolic(clauses))
    }

    /// The mode a file of mode `mode` (permission bits) gets.
    pub fn apply(&self, mode: u32, is_dir: bool) -> u32 {
        let clauses = match self {
            Chmod::Octal(bits) => return *bits,
            Chmod::Symbolic(clauses) => clauses,
        };
        let mut mode = mode & 0o7777;
        for clause in clauses {
            let mut bits = 0;
            for c in clause.perms.chars() {
                bits |= match c {
                    'r' => 0o444,
                    'w' => 0o222,
                    'x' => 0o111,
                    'X' if is_dir || mode & 0o111 != 0 => 0o111,
                    's' => 0o6000,
                    't' => 0o1000,
                    _ => 0,
                };
            }
            let bits = bits & clause.who;
            match clause.op {
                '+' => mode |= bits,
                '-' => mode &= !bits,
                _ => mode = (mode & !(clause.who & 0o6777)) | bits,
            }
        }
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::Chmod;

    #[test]
    fn octal_and_symbolic() {
        assert_eq!(Chmod::parse("0755").unwrap().apply(0o600, false), 0o755);
        assert_eq!(Chmod::parse("4711").unwrap().apply(0, false), 0o4711);
        assert!(Chmod::parse("8").is_err());
        assert!(Chmod::parse("17777").is_err());
        let apply = |spec: &str, mode, dir| Chmod::parse(spec).unwrap().apply(mode, dir);
        assert_eq!(apply("u+x", 0o644, false), 0o744);
        assert_eq!(apply("go-w", 0o666, false), 0o644);
        assert_eq!(apply("a=rX", 0o640, false), 0o444);
        assert_eq!(apply("a=rX", 0o640, true), 0o555);
        assert_eq!(apply("a=rX", 0o740, false), 0o555);
        assert_eq!(apply("+x", 0o600, false), 0o711);
        assert_eq!(apply("u=rw,g=r,o=", 0o777, false), 0o640);
        assert_eq!(apply("u+s,+t", 0o755, false), 0o5755);
        assert_eq!(apply("u+x-w", 0o644, false), 0o544);
        for bad in ["", "z+x", "u+q", "u", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad:?}");
        }
    }
}
