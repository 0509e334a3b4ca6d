// SPDX-License-Identifier: MIT OR Apache-2.0
//! `@@M` metric lines: the figures the benchmark binary and the QEMU images print.
//!
//! A line is `@@M [name] key=value key=value ...`: an optional first word without `=` names
//! the record (`@@M bench_latency path=direct ...`), the rest are pairs. The marker may appear
//! anywhere in a line (two CPUs can share one), and `\r` is ignored. Values are kept as text;
//! [`Metric::num`] reads them as numbers.

/// One `@@M` line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metric {
    /// The record's name (empty when the line starts with a pair).
    pub name: String,
    /// The `key=value` pairs, in order.
    pub fields: Vec<(String, String)>,
}

impl Metric {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` as a number.
    pub fn num(&self, key: &str) -> Option<f64> {
        self.get(key)?.parse().ok()
    }

    /// Whether every `key=value` in `filter` is present with that value.
    pub fn matches(&self, filter: &[(&str, &str)]) -> bool {
        filter.iter().all(|(k, v)| self.get(k) == Some(*v))
    }
}

/// Parses one line; `None` if it carries no `@@M` marker.
pub fn parse_line(line: &str) -> Option<Metric> {
    let at = line.find("@@M")?;
    let rest = line[at + 3..].trim_end_matches(['\r', '\n']);
    let mut m = Metric::default();
    for (i, word) in rest.split_whitespace().enumerate() {
        match word.split_once('=') {
            Some((k, v)) => m.fields.push((k.to_owned(), v.to_owned())),
            None if i == 0 => m.name = word.to_owned(),
            // A stray word (a value with spaces in it, such as `order=[1, 2]`): kept as a
            // key without value so the pairs after it still parse.
            None => m.fields.push((word.to_owned(), String::new())),
        }
    }
    Some(m)
}

/// Every `@@M` line of `text`, in order.
pub fn parse(text: &str) -> Vec<Metric> {
    text.lines().filter_map(parse_line).collect()
}

/// The first metric called `name` whose fields match `filter`.
pub fn find<'a>(metrics: &'a [Metric], name: &str, filter: &[(&str, &str)]) -> Option<&'a Metric> {
    metrics.iter().find(|m| m.name == name && m.matches(filter))
}

/// Every metric called `name`.
pub fn all<'a>(metrics: &'a [Metric], name: &'a str) -> impl Iterator<Item = &'a Metric> + 'a {
    metrics.iter().filter(move |m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_anonymous_lines_parse() {
        let m = parse_line("@@M bench_latency path=direct insns_min=64 el2_exits_per_irq=0.00")
            .unwrap();
        assert_eq!(m.name, "bench_latency");
        assert_eq!(m.get("path"), Some("direct"));
        assert_eq!(m.num("insns_min"), Some(64.0));
        assert_eq!(m.num("el2_exits_per_irq"), Some(0.0));
        assert_eq!(m.get("absent"), None);
        let a = parse_line("@@M stack_peak=47080\r").unwrap();
        assert_eq!(a.name, "");
        assert_eq!(a.num("stack_peak"), Some(47080.0));
    }

    #[test]
    fn marker_anywhere_and_other_lines_ignored() {
        let text = "guest: hello\nxx@@M vlpi_direct el2_exits_per_vlpi=0.00\n@@T ok x\n";
        let ms = parse(text);
        assert_eq!(ms.len(), 1);
        assert_eq!(ms[0].name, "vlpi_direct");
        assert_eq!(parse_line("@@T done passed=1 failed=0"), None);
    }

    #[test]
    fn values_with_spaces_do_not_hide_later_pairs() {
        let m = parse_line("@@M fwd_lr order=[201, 205] irqs=6").unwrap();
        assert_eq!(m.num("irqs"), Some(6.0));
        assert_eq!(m.get("order"), Some("[201,"));
    }

    #[test]
    fn find_filters_by_name_and_fields() {
        let ms = parse("@@M a k=1 n=2\n@@M a k=2 n=3\n@@M b k=2 n=4\n");
        assert_eq!(
            find(&ms, "a", &[("k", "2")]).and_then(|m| m.num("n")),
            Some(3.0)
        );
        assert_eq!(find(&ms, "b", &[]).and_then(|m| m.num("n")), Some(4.0));
        assert!(find(&ms, "a", &[("k", "9")]).is_none());
        assert_eq!(all(&ms, "a").count(), 2);
    }
}
