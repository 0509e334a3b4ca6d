// SPDX-License-Identifier: MIT OR Apache-2.0
//! Markdown templates of named blocks with `{{hole}}`s: how the report's prose is kept.
//!
//! In a template, a line `<!-- block NAME -->` starts the block NAME, which runs to the next
//! such line or to the end of the text; what comes before the first one is the file's own
//! header and belongs to no block. A block is its text as written, byte for byte (blank lines
//! included), with each `{{name}}` replaced by the value given for `name`.
//!
//! Written here rather than taken from a template engine (minijinja, tinytemplate, ...): the
//! report needs named holes and nothing else, and an engine would bring its own syntax,
//! whitespace rules and dependencies (serde) into xtask for that.

/// A parsed template: its blocks, in order.
#[derive(Clone, Debug)]
pub struct Template {
    blocks: Vec<(&'static str, &'static str)>,
}

/// The text between `{{` and `}}` at the start of `s`, if `s` starts with a hole.
fn hole_at(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?;
    let end = inner.find("}}")?;
    let name = &inner[..end];
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

impl Template {
    /// Splits `text` into its blocks.
    pub fn parse(text: &'static str) -> Self {
        let mut blocks: Vec<(&'static str, &'static str)> = Vec::new();
        // The current block: its name and where its text starts.
        let mut open: Option<(&'static str, usize)> = None;
        let mut at = 0;
        for line in text.split_inclusive('\n') {
            let marker = line
                .trim_end()
                .strip_prefix("<!-- block ")
                .and_then(|rest| rest.strip_suffix(" -->"));
            if let Some(name) = marker {
                if let Some((prev, start)) = open {
                    blocks.push((prev, &text[start..at]));
                }
                open = Some((name, at + line.len()));
            }
            at += line.len();
        }
        if let Some((prev, start)) = open {
            blocks.push((prev, &text[start..]));
        }
        Self { blocks }
    }

    /// The block called `name` as written, holes unfilled.
    pub fn block(&self, name: &str) -> Option<&'static str> {
        self.blocks
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }

    /// The blocks' names, in order.
    #[cfg(test)]
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.blocks.iter().map(|(n, _)| *n)
    }

    /// The names of the holes in block `name`, in order of appearance, each once.
    #[cfg(test)]
    pub fn holes(&self, name: &str) -> Vec<&'static str> {
        let mut holes = Vec::new();
        let text = self.block(name).unwrap_or_default();
        for (i, _) in text.match_indices("{{") {
            if let Some(h) = hole_at(&text[i..])
                && !holes.contains(&h)
            {
                holes.push(h);
            }
        }
        holes
    }

    /// Block `name` with each hole replaced by its value in `values`. A hole without a value
    /// stays as written (`{{name}}`), so a mismatch between template and code shows in the
    /// output instead of vanishing; an unknown block gives the empty string. The report's
    /// golden tests render every block and fail on either.
    pub fn fill(&self, name: &str, values: &[(&str, &str)]) -> String {
        let mut rest = self.block(name).unwrap_or_default();
        let mut out = String::with_capacity(rest.len());
        while let Some(i) = rest.find("{{") {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            let value = hole_at(rest).and_then(|hole| {
                let (_, v) = values.iter().find(|(k, _)| *k == hole)?;
                Some((hole, v))
            });
            match value {
                Some((hole, v)) => {
                    out.push_str(v);
                    rest = &rest[hole.len() + 4..];
                }
                None => {
                    out.push_str("{{");
                    rest = &rest[2..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "header, in no block\n\
                        <!-- block a -->\n\
                        # {{title}}\n\
                        \n\
                        {{n}} of {{n}}, {{missing}}, {{not a hole}}, {{}}\n\
                        <!-- block b -->\n\
                        <!-- block c -->\n\
                        last, no newline";

    #[test]
    fn blocks_run_from_their_marker_to_the_next_and_keep_their_bytes() {
        let t = Template::parse(TEXT);
        assert_eq!(t.names().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(
            t.block("a"),
            Some("# {{title}}\n\n{{n}} of {{n}}, {{missing}}, {{not a hole}}, {{}}\n")
        );
        assert_eq!(t.block("b"), Some(""));
        assert_eq!(t.block("c"), Some("last, no newline"));
        assert_eq!(t.block("header"), None);
        assert_eq!(t.holes("a"), ["title", "n", "missing"]);
    }

    #[test]
    fn fill_replaces_each_hole_and_leaves_unknown_ones_visible() {
        let t = Template::parse(TEXT);
        assert_eq!(
            t.fill("a", &[("title", "T"), ("n", "{{n}}2"), ("unused", "x")]),
            "# T\n\n{{n}}2 of {{n}}2, {{missing}}, {{not a hole}}, {{}}\n"
        );
        assert_eq!(t.fill("nope", &[]), "");
    }

    #[test]
    fn the_report_template_has_unique_blocks_and_only_named_holes() {
        let t = Template::parse(super::super::TEMPLATE);
        let names: Vec<&str> = t.names().collect();
        for (i, name) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(name), "block {name} twice");
            let text = t.block(name).unwrap_or_default();
            // Every `{{` opens a well-formed hole.
            assert_eq!(
                text.matches("{{").count(),
                text.match_indices("{{")
                    .filter(|(i, _)| hole_at(&text[*i..]).is_some())
                    .count(),
                "block {name}"
            );
        }
        assert!(names.contains(&"intro") && names.contains(&"not-run"));
    }
}
