//! The htpasswd file behind `pullAuth`: `user:hash` lines as `htpasswd -B` writes them.
//!
//! Only bcrypt is accepted. The other formats htpasswd can write (MD5 `$apr1$`, SHA-1
//! `{SHA}`, crypt, plain text) are fast to brute-force from a leaked file, and accepting them
//! silently would leave an operator believing the file is as strong as bcrypt. So the whole
//! file is checked at start and the first bad line stops the server, naming the line.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// bcrypt's own bounds on the cost: `bcrypt::verify` refuses anything outside at run time, so
/// such a line is refused at start instead.
const COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// The users of an htpasswd file, each with a bcrypt hash.
#[derive(Clone, PartialEq, Eq)]
pub struct Htpasswd {
    users: BTreeMap<String, String>,
}

/// Why a line is refused; `line` counts from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// Hashes are not secret the way passwords are, but they are what an attacker would brute
/// force: logs and panics show the user names only.
impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Htpasswd {
    /// Parses the file's text. Blank lines and lines starting with `#` are skipped, as Apache
    /// does; a CRLF line end is accepted.
    pub fn parse(text: &str) -> Result<Htpasswd, LineError> {
        let mut users = BTreeMap::new();
        let mut first_seen = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let entry = raw.strip_suffix('\r').unwrap_or(raw);
            if entry.trim().is_empty() || entry.trim_start().starts_with('#') {
                continue;
            }
            let bad = |message: String| LineError { line, message };
            let Some((user, hash)) = entry.split_once(':') else {
                return Err(bad(
                    "not a `user:hash` line (create entries with `htpasswd -B FILE USER`)".into(),
                ));
            };
            if user.is_empty() {
                return Err(bad("the user name is empty".into()));
            }
            if user.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(bad(format!(
                    "user {user:?}: a user name holds no spaces or control characters"
                )));
            }
            check_bcrypt(hash.trim_end()).map_err(|why| bad(format!("user {user:?}: {why}")))?;
            if let Some(first) = first_seen.insert(user.to_string(), line) {
                return Err(bad(format!(
                    "user {user:?} is listed again (first on line {first})"
                )));
            }
            users.insert(user.to_string(), hash.trim_end().to_string());
        }
        if users.is_empty() {
            return Err(LineError {
                line: 0,
                message: "holds no user; add one with `htpasswd -B FILE USER`".into(),
            });
        }
        Ok(Htpasswd { users })
    }

    /// The bcrypt hash of `user`, if the file lists it.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.users.get(user).map(String::as_str)
    }

    /// A real hash of the file's to check a password against when the user is unknown, so
    /// that an unknown user costs the same bcrypt work as a wrong password and the time an
    /// answer takes does not tell which user names exist. The result of that check is thrown
    /// away.
    pub fn decoy_hash(&self) -> &str {
        // `parse` refuses a file without users.
        self.users.values().next().map_or("", String::as_str)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Accepts `$2y$`, `$2b$` and `$2a$` bcrypt hashes that `bcrypt::verify` can use; names the
/// format of anything else so the operator knows what to regenerate.
fn check_bcrypt(hash: &str) -> Result<(), String> {
    let refuse = |what: &str| {
        Err(format!(
            "{what} is not accepted: only bcrypt ($2y$, $2b$, $2a$); recreate the entry with \
             `htpasswd -B FILE USER`"
        ))
    };
    if hash.is_empty() {
        return refuse("an empty hash");
    }
    let prefix_ok = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p));
    if !prefix_ok {
        return match hash {
            h if h.starts_with("$2x$") => refuse("a $2x$ hash (the old, buggy bcrypt variant)"),
            h if h.starts_with("$apr1$") => refuse("an MD5 hash ($apr1$, `htpasswd -m`)"),
            h if h.starts_with("{SHA}") => refuse("a SHA-1 hash ({SHA}, `htpasswd -s`)"),
            h if h.starts_with("$1$") => refuse("an MD5-crypt hash ($1$)"),
            h if h.starts_with("$5$") || h.starts_with("$6$") => {
                refuse("a SHA-crypt hash ($5$/$6$, `htpasswd -2`/`-5`)")
            }
            h if h.len() == 13 && !h.starts_with('$') => refuse("a crypt hash (`htpasswd -d`)"),
            _ => refuse("a plain-text password or unknown hash"),
        };
    }
    let parts = bcrypt::HashParts::from_str(hash)
        .map_err(|e| format!("a malformed bcrypt hash ({e}); recreate it with `htpasswd -B`"))?;
    if !COSTS.contains(&parts.get_cost()) {
        return Err(format!(
            "bcrypt cost {} is outside {}..={}; recreate the entry with `htpasswd -B -C 10`",
            parts.get_cost(),
            COSTS.start(),
            COSTS.end()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost 4 keeps the tests fast; the format is what `htpasswd -B` writes.
    fn bcrypt_line(user: &str, password: &str, version: bcrypt::Version) -> String {
        let parts = bcrypt::hash_with_result(password, 4).expect("hash");
        format!("{user}:{}", parts.format_for_version(version))
    }

    #[test]
    fn bcrypt_entries_of_every_accepted_prefix_are_read() {
        let text = format!(
            "# pull users\n{}\r\n\n{}\n{}\n",
            bcrypt_line("alice", "a", bcrypt::Version::TwoY),
            bcrypt_line("bob", "b", bcrypt::Version::TwoB),
            bcrypt_line("carol", "c", bcrypt::Version::TwoA),
        );
        let file = Htpasswd::parse(&text).expect("valid file");
        assert_eq!(file.len(), 3);
        let alice = file.hash_of("alice").expect("alice");
        assert!(alice.starts_with("$2y$04$"), "{alice}");
        assert!(bcrypt::verify("a", alice).expect("verify"));
        assert!(file.hash_of("dave").is_none());
        assert!(!file.decoy_hash().is_empty());
        assert!(!format!("{file:?}").contains("$2"), "Debug shows hashes");
    }

    #[test]
    fn a_line_that_is_not_user_colon_hash_is_refused_with_its_number() {
        let good = bcrypt_line("alice", "a", bcrypt::Version::TwoY);
        for (text, line, needle) in [
            (
                format!("{good}\njust-a-name\n"),
                2,
                "not a `user:hash` line",
            ),
            (format!(":{}", &good[6..]), 1, "user name is empty"),
            (
                format!("\n\n{good}\n{good}\n"),
                4,
                "listed again (first on line 3)",
            ),
            ("bob:$2y$04$tooshort".to_string(), 1, "malformed bcrypt"),
            ("bob:".to_string(), 1, "an empty hash"),
        ] {
            let e = Htpasswd::parse(&text).expect_err(&text);
            assert_eq!(e.line, line, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().starts_with(&format!("line {line}: ")), "{e}");
        }
    }

    #[test]
    fn a_cost_bcrypt_cannot_verify_is_refused() {
        let parts = bcrypt::hash_with_result("x", 4).expect("hash");
        let hash = parts.format_for_version(bcrypt::Version::TwoY);
        let hash = format!("$2y$32${}", &hash[7..]);
        let e = Htpasswd::parse(&format!("u:{hash}")).expect_err("cost 32");
        assert!(e.message.contains("cost 32"), "{e}");
    }

    #[test]
    fn non_bcrypt_hashes_are_refused_naming_their_format() {
        for (hash, needle) in [
            ("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "MD5"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
            ("rqXexS6ZhobKA", "crypt"),
            ("$1$abc$def", "MD5-crypt"),
            ("$6$salt$hash", "SHA-crypt"),
            (
                "$2x$04$abcdefghijklmnopqrstuvabcdefghijklmnopqrstuvwxyz01234",
                "$2x$",
            ),
            ("hunter2", "plain-text"),
        ] {
            let e = Htpasswd::parse(&format!("bob:{hash}\n")).expect_err(hash);
            assert_eq!(e.line, 1);
            assert!(e.message.contains(needle), "{hash}: {e}");
            assert!(e.message.contains("htpasswd -B"), "{e}");
            assert!(e.message.contains("\"bob\""), "{e}");
        }
    }

    #[test]
    fn a_file_without_users_is_refused() {
        let e = Htpasswd::parse("# nobody yet\n\n").expect_err("empty");
        assert_eq!(e.line, 0);
        assert!(e.to_string().contains("holds no user"), "{e}");
    }
}
