//! Case-insensitive text matching that gives the same answer on every backend and in every
//! language.
//!
//! The databases disagree on case: SQLite's `LOWER()` folds ASCII only, PostgreSQL follows
//! the database's `LC_CTYPE`, MySQL its collation (which also ignores accents). So the
//! service never asks the database to fold: two characters match when their simple lowercase
//! forms are equal ([`fold`]), and a pattern is sent as explicit character classes
//! (`[Ää][Rr]…`) that every backend matches case-sensitively. A character whose lowercase is
//! more than one character (such as `İ`) matches only itself.

use std::collections::HashMap;
use std::sync::LazyLock;

/// The simple lowercase of `c`: its lowercase when that is one character, else `c`.
pub fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Every character that folds to the same character as `c` (`c` included), in code point
/// order; just `[c]` for a character without case.
pub fn class(c: char) -> Vec<char> {
    CLASSES.get(&fold(c)).cloned().unwrap_or_else(|| vec![c])
}

/// Whether `text` contains `pattern` (`starts`: begins with it), characters compared
/// through [`fold`]: the meaning of the text filters, for checks done in memory.
pub fn matches(text: &str, pattern: &str, starts: bool) -> bool {
    let text: String = text.chars().map(fold).collect();
    let pattern: String = pattern.chars().map(fold).collect();
    if starts {
        text.starts_with(&pattern)
    } else {
        text.contains(&pattern)
    }
}

/// Folded character → every character folding to it (itself included), for characters
/// that have case.
static CLASSES: LazyLock<HashMap<char, Vec<char>>> = LazyLock::new(|| {
    let mut map: HashMap<char, Vec<char>> = HashMap::new();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let f = fold(c);
        if f != c {
            map.entry(f).or_insert_with(|| vec![f]).push(c);
        }
    }
    for members in map.values_mut() {
        members.sort_unstable();
        members.dedup();
    }
    map
});

/// Writes `members` as a bracket class (`[Ää]`): letters only, so no character in it needs
/// escaping in GLOB or in a regular expression.
fn push_class(out: &mut String, members: &[char]) {
    out.push('[');
    out.extend(members.iter());
    out.push(']');
}

/// A SQLite `GLOB` pattern matching text that contains `pattern` (`starts`: begins with it)
/// under [`fold`].
pub fn glob(pattern: &str, starts: bool) -> String {
    let mut out = String::with_capacity(pattern.len() * 3 + 2);
    if !starts {
        out.push('*');
    }
    for c in pattern.chars() {
        let members = class(c);
        if members.len() > 1 {
            push_class(&mut out, &members);
        } else {
            match c {
                '*' | '?' | '[' => {
                    out.push('[');
                    out.push(c);
                    out.push(']');
                }
                _ => out.push(c),
            }
        }
    }
    out.push('*');
    out
}

/// A regular expression (PostgreSQL's, and PCRE/ICU on MySQL and MariaDB alike) matching
/// text that contains `pattern` (`starts`: begins with it) under [`fold`].
pub fn regex(pattern: &str, starts: bool) -> String {
    let mut out = String::with_capacity(pattern.len() * 3 + 1);
    if starts {
        out.push('^');
    }
    for c in pattern.chars() {
        let members = class(c);
        if members.len() > 1 {
            push_class(&mut out, &members);
        } else {
            if c.is_ascii_punctuation() {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_of_any_script_fold_both_ways() {
        assert_eq!(class('ä'), vec!['Ä', 'ä']);
        assert_eq!(class('Ä'), vec!['Ä', 'ä']);
        assert_eq!(class('ж'), vec!['Ж', 'ж']);
        // The Kelvin sign folds to k.
        assert_eq!(class('k'), vec!['K', 'k', '\u{212A}']);
        assert_eq!(class('7'), vec!['7']);
        assert!(matches("Großer ÄRGER", "ärger", false));
        assert!(!matches("Arger", "ärger", false));
        assert!(matches("ΟΔΟΣ", "οδοσ", true));
    }

    #[test]
    fn patterns_escape_their_syntax() {
        assert_eq!(glob("a*?[", true), "[Aa][*][?][[]*");
        assert_eq!(glob("%_", false), "*%_*");
        assert_eq!(regex("a.b\\", true), "^[Aa]\\.[Bb]\\\\");
        assert_eq!(regex("x%_", false), "[Xx]\\%\\_");
    }
}
