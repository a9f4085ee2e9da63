//! A small TOML writer that keeps comments where they belong. A serializer cannot do that,
//! and the point of the output is that an operator reads it: every table says where in the
//! original file it came from, and what could not be carried over is marked at its spot.

use std::fmt::Write as _;

/// A TOML value as the importer writes it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string (escaped on output).
    Str(String),
    /// An integer.
    Int(u64),
    /// A boolean.
    Bool(bool),
    /// An array of strings.
    Strs(Vec<String>),
    /// HTTP statuses: `200` or `"200-299"` each.
    Statuses(Vec<(u16, u16)>),
}

/// TOML basic string with the escapes TOML requires.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Value {
    fn render(&self) -> String {
        match self {
            Value::Str(s) => quote(s),
            Value::Int(i) => i.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Strs(v) => format!(
                "[{}]",
                v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
            ),
            Value::Statuses(v) => format!(
                "[{}]",
                v.iter()
                    .map(|(lo, hi)| if lo == hi {
                        lo.to_string()
                    } else {
                        format!("\"{lo}-{hi}\"")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// The document being written.
#[derive(Debug, Default)]
pub struct Doc {
    text: String,
}

impl Doc {
    /// `# line` for each line of `text` (an empty line of text gives a bare `#`).
    pub fn comment(&mut self, text: &str) {
        for l in text.lines() {
            if l.is_empty() {
                self.text.push_str("#\n");
            } else {
                let _ = writeln!(self.text, "# {l}");
            }
        }
    }

    /// An empty line.
    pub fn blank(&mut self) {
        self.text.push('\n');
    }

    /// `[name]`.
    pub fn table(&mut self, name: &str) {
        let _ = writeln!(self.text, "[{name}]");
    }

    /// `[[name]]`.
    pub fn array_table(&mut self, name: &str) {
        let _ = writeln!(self.text, "[[{name}]]");
    }

    /// `key = value`, with an end-of-line comment when `note` is given.
    pub fn kv(&mut self, key: &str, v: Value, note: Option<&str>) {
        let _ = write!(self.text, "{key} = {}", v.render());
        if let Some(n) = note {
            let _ = write!(self.text, "  # {n}");
        }
        self.text.push('\n');
    }

    /// `key = text` where `text` is already TOML (an inline table), with a comment.
    pub fn raw(&mut self, key: &str, text: &str, note: &str) {
        let _ = writeln!(self.text, "{key} = {text}  # {note}");
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

/// A duration in vipd's syntax from milliseconds: whole seconds as `"5s"`, else `"1500ms"`.
pub fn duration(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_toml() {
        let mut d = Doc::default();
        d.comment("from keepalived.conf:3\n\nsecond");
        d.array_table("service");
        d.kv("name", Value::Str("a \"b\"\\".into()), None);
        d.kv("port", Value::Int(80), Some("virtual_server"));
        d.kv("alpha", Value::Bool(false), None);
        d.kv("checks", Value::Strs(vec!["x".into(), "y".into()]), None);
        d.kv(
            "expect_status",
            Value::Statuses(vec![(200, 204), (301, 301)]),
            None,
        );
        assert_eq!(
            d.finish(),
            "# from keepalived.conf:3\n#\n# second\n[[service]]\nname = \"a \\\"b\\\"\\\\\"\nport = 80  # virtual_server\nalpha = false\nchecks = [\"x\", \"y\"]\nexpect_status = [\"200-204\", 301]\n"
        );
        assert_eq!(duration(5000), "5s");
        assert_eq!(duration(1500), "1500ms");
    }
}
