//! A POSIX-shell word splitter for the simple command lines people write for ExaBGP's
//! healthcheck (`--exabgp-healthcheck '--cmd "test -f x" --ip 192.0.2.1/32'`).
//!
//! Quoting is exactly `/bin/sh`'s: `'...'` is literal; in `"..."` a backslash only escapes
//! `$`, `` ` ``, `"`, `\` and a newline; outside quotes a backslash escapes any character
//! and backslash-newline disappears; an unquoted `#` at the start of a word starts a
//! comment. No expansion is performed, so rather than return words the shell would not
//! have produced, unquoted operators (`|`, `&`, `;`, `<`, `>`, `(`, `)`), backquotes and
//! `$` expansions (`$NAME`, `${...}`, `$(...)`, `$1`, ...) are refused; quote them.

/// Why a string could not be split.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A quote opened at byte `offset` is never closed.
    #[error("unterminated {quote} quote opened at offset {offset}")]
    UnterminatedQuote { quote: char, offset: usize },
    /// The string ends with an unescaped backslash.
    #[error("trailing backslash")]
    TrailingBackslash,
    /// A shell feature this splitter does not implement, at byte `offset`.
    #[error("unsupported shell syntax '{what}' at offset {offset} (quote it)")]
    Unsupported { what: String, offset: usize },
}

/// Splits a shell-like command line the way `/bin/sh` would for simple cases: whitespace,
/// single and double quotes, backslash escapes; no expansions (see the module docs for
/// what is refused).
///
/// ```
/// use vipd_import::exabgp::shell_split;
/// assert_eq!(
///     shell_split(r#"--cmd "test -f x" --name 'a b' c\ d"#).unwrap(),
///     ["--cmd", "test -f x", "--name", "a b", "c d"]
/// );
/// ```
pub fn shell_split(s: &str) -> Result<Vec<String>, SplitError> {
    let mut out = Vec::new();
    let mut word = String::new();
    // Whether a word has started (`''` is an empty word).
    let mut in_word = false;
    let mut chars = s.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => {
                // A comment: skip to the end of the line.
                while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            }
            '\\' => match chars.next() {
                Some((_, '\n')) => {}
                Some((_, e)) => {
                    word.push(e);
                    in_word = true;
                }
                None => return Err(SplitError::TrailingBackslash),
            },
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, q)) => word.push(q),
                        None => return Err(SplitError::UnterminatedQuote { quote: c, offset }),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, e @ ('$' | '`' | '"' | '\\'))) => word.push(e),
                            Some((_, '\n')) => {}
                            Some((_, e)) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => {
                                return Err(SplitError::UnterminatedQuote { quote: c, offset });
                            }
                        },
                        Some((at, '$')) => {
                            check_dollar(at, chars.peek().map(|&(_, n)| n))?;
                            word.push('$');
                        }
                        Some((at, '`')) => return Err(unsupported("`", at)),
                        Some((_, q)) => word.push(q),
                        None => return Err(SplitError::UnterminatedQuote { quote: c, offset }),
                    }
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '`' => {
                return Err(unsupported(&c.to_string(), offset));
            }
            '$' => {
                check_dollar(offset, chars.peek().map(|&(_, n)| n))?;
                word.push('$');
                in_word = true;
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

fn unsupported(what: &str, offset: usize) -> SplitError {
    SplitError::Unsupported {
        what: what.to_owned(),
        offset,
    }
}

/// A `$` the shell would expand is refused; a `$` it leaves alone (`a$`, `$ `, `$%`) is
/// kept.
fn check_dollar(offset: usize, next: Option<char>) -> Result<(), SplitError> {
    match next {
        Some(n) if n.is_ascii_alphanumeric() || "_{(@*#?$!-".contains(n) => {
            Err(unsupported(&format!("${n}"), offset))
        }
        _ => Ok(()),
    }
}
